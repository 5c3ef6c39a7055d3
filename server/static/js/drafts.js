// The message box's unsent text, one per conversation, kept in localStorage: a half-typed
// message neither follows the user into another conversation nor is lost on a reload.

const KEY = "chatrelay.drafts";

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY));
    return saved && typeof saved === "object" && !Array.isArray(saved) ? saved : {};
  } catch {
    return {};
  }
}

export class Drafts {
  constructor() {
    this.drafts = load();
  }

  get(id) {
    const text = this.drafts[id];
    return typeof text === "string" ? text : "";
  }

  set(id, text) {
    if (this.get(id) === text) return;
    if (text) this.drafts[id] = text;
    else delete this.drafts[id];
    this.save();
  }

  // Drafts of conversations that are gone (deleted, or new ones never sent) are forgotten.
  keepOnly(ids) {
    const kept = new Set(ids);
    const before = Object.keys(this.drafts).length;
    for (const id of Object.keys(this.drafts)) if (!kept.has(id)) delete this.drafts[id];
    if (Object.keys(this.drafts).length !== before) this.save();
  }

  save() {
    try {
      localStorage.setItem(KEY, JSON.stringify(this.drafts));
    } catch {
      // Storage full or refused: the draft lives on in the box until the page goes.
    }
  }
}
