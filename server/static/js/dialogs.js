// The two dialogs: the OpenRouter key (saved server-side in the session) and the access token login.

import * as api from "./api.js";

function describeProfile(profile) {
  if (profile.source === "session") return `A key ending in ${profile.hint} is saved for this browser.`;
  if (profile.source === "server") return "No key saved here: chats use the server's key.";
  return "No key is set: paste your OpenRouter key to chat.";
}

export class KeyDialog {
  // onSaved(profile): the session now holds a different key (or none).
  constructor(dialog, onSaved) {
    this.dialog = dialog;
    this.onSaved = onSaved;
    this.input = dialog.querySelector("#key-input");
    this.status = dialog.querySelector("#key-status");
    this.error = dialog.querySelector("#key-error");
    this.clear = dialog.querySelector("#key-clear");
    dialog.querySelector("form").addEventListener("submit", (event) => {
      if (event.submitter?.value === "cancel") return;
      event.preventDefault();
      const key = this.input.value.trim();
      if (key) this.save(() => api.saveKey(key));
      else this.error.textContent = "Paste a key first, or use Remove saved key.";
    });
    this.clear.addEventListener("click", () => this.save(api.clearKey));
  }

  open(profile, reason = "") {
    this.status.textContent = describeProfile(profile);
    this.clear.hidden = profile.source !== "session";
    this.error.textContent = reason;
    this.input.value = "";
    if (!this.dialog.open) this.dialog.showModal();
    this.input.focus();
  }

  async save(request) {
    try {
      const profile = await request();
      this.input.value = "";
      this.dialog.close("saved");
      this.onSaved(profile);
    } catch (error) {
      this.error.textContent = error.message;
    }
  }
}

export class LoginDialog {
  // onLoggedIn(): the session may now use /api/* and the socket.
  constructor(dialog, onLoggedIn) {
    this.dialog = dialog;
    this.input = dialog.querySelector("#login-input");
    this.error = dialog.querySelector("#login-error");
    // Without the token nothing works: Escape must not leave a dead page behind.
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    dialog.querySelector("form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api.login(this.input.value);
        this.input.value = "";
        this.dialog.close();
        onLoggedIn();
      } catch (error) {
        this.error.textContent = error.message;
      }
    });
  }

  open() {
    this.error.textContent = "";
    if (!this.dialog.open) this.dialog.showModal();
    this.input.focus();
  }
}

// Asks whether the browser's own conversations move into the account just signed in to:
// true (move), false (keep them here), null (dismissed: ask another time).
export function askToMove(dialog, count) {
  const words = count === 1 ? "1 conversation is" : `${count} conversations are`;
  dialog.querySelector("#move-text").textContent =
    `${words} kept in this browser only. Moved, they are in your account on every device.`;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve({ move: true, keep: false }[dialog.returnValue] ?? null), {
      once: true,
    });
    dialog.showModal();
  });
}
