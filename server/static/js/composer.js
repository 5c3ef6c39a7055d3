// The message box and its buttons: Enter sends (Shift+Enter a new line), ↑ in an empty box edits
// the last message, images come with the next message, and the box grows with its text.

import { Attachments } from "./attachments.js";
import { ui } from "./ui.js";

// actions: {submit(text, images) → whether it was sent, editLast() → whether there was one,
//           stop(), busy() → bool, error(text)}
export function setupComposer(actions) {
  const attachments = new Attachments(
    { list: ui.attachments, button: ui.attach, input: ui.attachFile, dropZone: ui.main, pasteTarget: ui.prompt },
    actions.error,
  );
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.prompt.value.trim();
    if ((!text && !attachments.images.length) || actions.busy()) return;
    if (!actions.submit(text, attachments.images)) return;
    ui.prompt.value = "";
    attachments.take();
  });
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    } else if (event.key === "ArrowUp" && !ui.prompt.value && !actions.busy() && actions.editLast()) {
      event.preventDefault();
    }
  });
  ui.stop.addEventListener("click", () => actions.stop());
  // Where CSS cannot grow the box with its text (field-sizing), script does.
  if (!CSS.supports("field-sizing", "content")) {
    ui.prompt.addEventListener("input", () => {
      ui.prompt.style.height = "auto";
      ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, window.innerHeight * 0.4)}px`;
    });
  }
}
