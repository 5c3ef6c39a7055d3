// What the account and admin dialogs' forms share: a form's fields by name, its error line,
// a submit that waits (its button disabled meanwhile), and copying a shown secret or link.

export const field = (form, name) => form.elements.namedItem(name);

export function setError(form, text) {
  const line = form.querySelector(".error-text");
  if (line) line.textContent = text;
}

// Runs `action` on submit; its error's message goes to the form's error line.
export function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("[type=submit]");
    setError(form, "");
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      setError(form, error.message);
    } finally {
      button.disabled = false;
    }
  });
}

export async function copyFrom(input, button) {
  const label = "Copy";
  try {
    await navigator.clipboard.writeText(input.value);
    button.textContent = "Copied";
  } catch {
    // No clipboard (not a secure context, or refused): select it for the user to copy.
    input.select();
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => {
    button.textContent = label;
  }, 2000);
}

export function when(iso) {
  if (!iso) return "never";
  return new Date(iso).toLocaleString("en", { dateStyle: "medium", timeStyle: "short" });
}

export function closeButtons(dialog) {
  for (const button of dialog.querySelectorAll(".dialog-close")) {
    button.addEventListener("click", () => dialog.close());
  }
}
