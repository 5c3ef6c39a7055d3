// Conversations kept in IndexedDB, one record each, so they survive reloads, are not capped at
// localStorage's few megabytes, and two tabs never overwrite each other: a tab writes only the
// conversation it changed, and tells the other tabs (BroadcastChannel), which merge it by id.
// Events: "changed" (detail: {conversation}), "removed" (detail: {id}).

import { openDB } from "/vendor/idb.js";
import { mergeInto } from "./merge.js";

const DB_NAME = "chatrelay";
const TABLE = "conversations";
const LEGACY_KEY = "chatrelay.conversations.v1";
// A tab leaving with writes still on their way (IndexedDB aborts them with the page) leaves
// them here, in localStorage, which writes at once; the next page to open replays them.
const UNSAVED_PREFIX = "chatrelay.unsaved.";
const SAVE_DELAY_MS = 300;
const DEFAULT_MODEL = "openai/gpt-4o-mini";
export const DEFAULT_TITLE = "New chat";

// Works outside secure contexts too (crypto.randomUUID does not), e.g. on a LAN address.
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const isEmpty = (conversation) => conversation.messages.length === 0;

// The page once kept everything in one localStorage string: move it over once, then drop it.
async function migrateLegacy(db) {
  let saved;
  try {
    saved = JSON.parse(localStorage.getItem(LEGACY_KEY));
  } catch {
    saved = null;
  }
  if (!Array.isArray(saved?.conversations)) return;
  const now = Date.now();
  const tx = db.transaction(TABLE, "readwrite");
  saved.conversations.forEach((conversation, index) => {
    conversation.updatedAt ??= now - index;
    for (const message of conversation.messages) message.id ??= newId();
    tx.store.put(conversation);
  });
  await tx.done;
  localStorage.removeItem(LEGACY_KEY);
}

function unsavedKeys() {
  const keys = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (key.startsWith(UNSAVED_PREFIX)) keys.push(key);
  }
  return keys;
}

// What tabs left unwritten, merged into what IndexedDB has (the newer copy wins, as between
// tabs), deletions included; each journal is dropped once it is written.
async function replayUnsaved(db) {
  for (const key of unsavedKeys()) {
    let journal;
    try {
      journal = JSON.parse(localStorage.getItem(key));
    } catch {
      journal = null;
    }
    const tx = db.transaction(TABLE, "readwrite");
    for (const conversation of journal?.conversations ?? []) {
      const stored = await tx.store.get(conversation.id);
      if (stored) mergeInto(conversation, stored);
      await tx.store.put(conversation);
    }
    for (const id of journal?.removed ?? []) await tx.store.delete(id);
    await tx.done;
    localStorage.removeItem(key);
  }
}

export class Store extends EventTarget {
  static async open(onSaveError) {
    const db = await openDB(DB_NAME, 1, {
      upgrade(database) {
        database.createObjectStore(TABLE, { keyPath: "id" });
      },
    });
    await migrateLegacy(db);
    await replayUnsaved(db);
    const store = new Store(db, onSaveError);
    store.conversations = await db.getAll(TABLE);
    store.sort();
    return store;
  }

  constructor(db, onSaveError) {
    super();
    this.db = db;
    this.onSaveError = onSaveError;
    this.conversations = [];
    this.timers = new Map();
    // Writes begun and not yet done: id -> the latest write's token; ids being deleted.
    this.writing = new Map();
    this.removing = new Set();
    this.unsavedKey = UNSAVED_PREFIX + newId();
    this.channel = new BroadcastChannel("chatrelay.conversations");
    this.channel.addEventListener("message", (event) => this.onPeer(event.data));
    // A tab going away keeps what it has not written yet; back from the bfcache, it writes on.
    window.addEventListener("pagehide", () => this.keepUnsaved());
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) localStorage.removeItem(this.unsavedKey);
    });
  }

  find(id) {
    return this.conversations.find((c) => c.id === id) ?? null;
  }

  // Most recent activity first.
  sort() {
    this.conversations.sort((a, b) => (b.updatedAt ?? 0) - (a.updatedAt ?? 0));
  }

  // Empty conversations left behind are forgotten (they were never written).
  dropEmpty(keepId) {
    this.conversations = this.conversations.filter((c) => !isEmpty(c) || c.id === keepId);
  }

  // A new conversation is only kept once it has a message: empty "New chat" entries never pile up.
  create(template) {
    const conversation = {
      id: newId(),
      title: DEFAULT_TITLE,
      model: template?.model ?? DEFAULT_MODEL,
      temperature: template?.temperature ?? 0.7,
      systemPrompt: "",
      messages: [],
      updatedAt: Date.now(),
    };
    this.conversations.unshift(conversation);
    return conversation;
  }

  // `conversation` changed now; `activity` says it moves to the top of the list.
  touch(conversation, { activity = false, soon = false } = {}) {
    if (activity) {
      conversation.updatedAt = Date.now();
      this.sort();
    } else {
      conversation.updatedAt = Math.max(conversation.updatedAt ?? 0, Date.now());
    }
    if (soon) return this.saveSoon(conversation);
    return this.save(conversation);
  }

  // Streaming changes a conversation many times a second: write it at most every SAVE_DELAY_MS.
  saveSoon(conversation) {
    if (this.timers.has(conversation.id)) return;
    this.timers.set(
      conversation.id,
      setTimeout(() => this.save(conversation), SAVE_DELAY_MS),
    );
  }

  async save(conversation) {
    clearTimeout(this.timers.get(conversation.id));
    this.timers.delete(conversation.id);
    if (isEmpty(conversation) || !this.conversations.includes(conversation)) return;
    const token = {};
    this.writing.set(conversation.id, token);
    try {
      // Read, merge, write in one transaction: what another tab wrote meanwhile is kept.
      const tx = this.db.transaction(TABLE, "readwrite");
      const stored = await tx.store.get(conversation.id);
      if (stored) mergeInto(conversation, stored);
      await tx.store.put(conversation);
      await tx.done;
      this.channel.postMessage({ type: "put", id: conversation.id });
    } catch (error) {
      this.onSaveError(error);
    } finally {
      if (this.writing.get(conversation.id) === token) this.writing.delete(conversation.id);
    }
  }

  // Synchronous, for pagehide: every conversation with a write pending or under way, and every
  // deletion under way, into this tab's localStorage journal (see replayUnsaved).
  keepUnsaved() {
    const ids = new Set([...this.timers.keys(), ...this.writing.keys()]);
    const conversations = [...ids].map((id) => this.find(id)).filter((c) => c && !isEmpty(c));
    if (conversations.length === 0 && this.removing.size === 0) return;
    try {
      localStorage.setItem(
        this.unsavedKey,
        JSON.stringify({ conversations, removed: [...this.removing] }),
      );
    } catch (error) {
      this.onSaveError(error);
    }
    this.flush();
  }

  flush() {
    for (const id of [...this.timers.keys()]) {
      const conversation = this.find(id);
      if (conversation) this.save(conversation);
    }
  }

  async remove(id) {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.conversations = this.conversations.filter((c) => c.id !== id);
    this.removing.add(id);
    try {
      await this.db.delete(TABLE, id);
      this.channel.postMessage({ type: "delete", id });
    } catch (error) {
      this.onSaveError(error);
    } finally {
      this.removing.delete(id);
    }
  }

  // Import: each conversation merged by id with the one of the same id, if any.
  async importAll(conversations) {
    for (const incoming of conversations) {
      const local = this.find(incoming.id);
      if (local) mergeInto(local, incoming);
      else this.conversations.push(incoming);
      await this.save(local ?? incoming);
    }
    this.sort();
  }

  // The stored copy folded into this tab's: another tab may have written it a moment ago.
  async refresh(conversation) {
    const stored = await this.db.get(TABLE, conversation.id);
    if (stored) mergeInto(conversation, stored);
  }

  async onPeer(message) {
    if (message?.type === "delete") {
      if (!this.find(message.id)) return;
      this.conversations = this.conversations.filter((c) => c.id !== message.id);
      this.emit("removed", { id: message.id });
      return;
    }
    if (message?.type !== "put") return;
    const incoming = await this.db.get(TABLE, message.id);
    if (!incoming) return;
    const local = this.find(message.id);
    const conversation = local ? mergeInto(local, incoming) : incoming;
    if (!local) this.conversations.push(conversation);
    this.sort();
    this.emit("changed", { conversation });
  }

  // Gone elsewhere (deleted on another device): removed here, and shown so.
  async discard(id) {
    await this.remove(id);
    this.emit("removed", { id });
  }

  // A conversation from elsewhere (the server's history): kept, written, and shown as another
  // tab's change would be.
  adopt(conversation) {
    if (!this.conversations.includes(conversation)) this.conversations.push(conversation);
    this.sort();
    this.save(conversation);
    this.emit("changed", { conversation });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
