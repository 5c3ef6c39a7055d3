// Page-wide keys: Esc closes the phone's conversation list or stops the answer, and
// Ctrl/Cmd+Shift+O starts a new chat. A dialog keeps Esc for itself.

import { isSidebarOpen, toggleSidebar } from "./layout.js";

// actions: {busy() → bool, stop(), newChat()}
export function setupShortcuts(actions) {
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !document.querySelector("dialog[open]")) {
      if (isSidebarOpen()) toggleSidebar(false);
      else if (actions.busy()) actions.stop();
    } else if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.key.toLowerCase() === "o") {
      event.preventDefault();
      actions.newChat();
    }
  });
}
