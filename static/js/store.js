// Conversations kept in localStorage, so they survive reloads: one JSON document under one key.

const STORAGE_KEY = "chatrelay.conversations.v1";
const SAVE_DELAY_MS = 300;
const DEFAULT_MODEL = "openai/gpt-4o-mini";
export const DEFAULT_TITLE = "New chat";

// Works outside secure contexts too (crypto.randomUUID does not), e.g. on a LAN address.
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function readSaved(storage) {
  try {
    const data = JSON.parse(storage.getItem(STORAGE_KEY));
    if (data && Array.isArray(data.conversations)) return data;
  } catch {
    // Unreadable storage starts afresh rather than breaking the page.
  }
  return { conversations: [], activeId: null };
}

export class Store {
  constructor(onSaveError, storage = window.localStorage) {
    this.storage = storage;
    this.onSaveError = onSaveError;
    this.saveTimer = null;
    const saved = readSaved(storage);
    this.conversations = saved.conversations;
    this.activeId = saved.activeId;
    // An answer still streaming when the page went away was cut off there.
    for (const conversation of this.conversations) {
      for (const message of conversation.messages) {
        if (message.status === "streaming") message.status = "interrupted";
      }
    }
    if (!this.active) this.create();
  }

  get active() {
    return this.conversations.find((c) => c.id === this.activeId) ?? null;
  }

  create(template = this.active) {
    const conversation = {
      id: newId(),
      title: DEFAULT_TITLE,
      model: template?.model ?? DEFAULT_MODEL,
      temperature: template?.temperature ?? 0.7,
      systemPrompt: "",
      messages: [],
    };
    this.conversations.unshift(conversation);
    this.activeId = conversation.id;
    this.save();
    return conversation;
  }

  select(id) {
    this.activeId = id;
    this.save();
  }

  rename(id, title) {
    const conversation = this.conversations.find((c) => c.id === id);
    conversation.title = title.trim() || DEFAULT_TITLE;
    this.save();
  }

  remove(id) {
    this.conversations = this.conversations.filter((c) => c.id !== id);
    if (this.activeId === id) this.activeId = this.conversations[0]?.id ?? null;
    if (!this.active) this.create(null);
    this.save();
  }

  // Streaming changes the document many times a second; write it at most every SAVE_DELAY_MS.
  saveSoon() {
    this.saveTimer ??= setTimeout(() => this.save(), SAVE_DELAY_MS);
  }

  save() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    const data = { conversations: this.conversations, activeId: this.activeId };
    try {
      this.storage.setItem(STORAGE_KEY, JSON.stringify(data));
    } catch (error) {
      this.onSaveError(error);
    }
  }
}
