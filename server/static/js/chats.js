// Runs chats over the socket and keeps every unfinished answer going: one `chat` frame out, then
// every frame for that id fills its message. The server keeps a chat when the socket drops or
// the page reloads, so an unfinished answer is resumed from the last `seq` it stored (a frame at
// or below it is a replay already shown), never asked of upstream again. One tab follows each
// chat (a Web Lock per chat id); the others see it through the store.

import { requestMessages } from "./request.js";
import { newId } from "./store.js";

const END_STATUS = { cancelled: "cancelled", length: "length" };

// Resolves with the lock's release once this tab holds it (at once, or when its holder goes).
function acquire(name) {
  return new Promise((granted) => {
    navigator.locks.request(name, () => new Promise((release) => granted(release)));
  });
}

const lockName = (chatId) => `chatrelay.chat.${chatId}`;

export class ChatRunner {
  // events: {changed(conversation, message), ended(conversation, message) → promise of it stored,
  //          refresh(conversation) → promise of it read again from the store, stray(frame)}
  constructor(socket, events) {
    this.socket = socket;
    this.events = events;
    this.chats = new Map(); // chat id → {conversation, message, ws, frame, resuming, retries, release}
    this.waiting = new Set(); // chat ids another tab follows, waiting for their lock
    // prepare(conversation, answer, frame): awaited before a chat is sent (history writes).
    this.prepare = null;
    // assignIds(conversation, answer, frame): may give the turn new ids, at once.
    this.assignIds = null;
    this.starting = new Set(); // chat ids of this tab being prepared, not yet sent
    this.peers = new BroadcastChannel("chatrelay.chats");
    this.peers.addEventListener("message", ({ data }) => {
      const chat = data?.type === "cancel" ? this.chats.get(data.id) : null;
      if (chat) this.cancel(chat);
    });
    socket.addEventListener("frame", (event) => this.onFrame(event.detail));
    socket.addEventListener("open", () => this.sendDetached());
    socket.addEventListener("dropped", ({ detail }) => {
      for (const chat of this.chats.values()) if (chat.ws === detail.ws) chat.ws = null;
    });
  }

  // Whether this tab streams `message` itself (or is about to send its chat).
  follows(message) {
    if (this.starting.has(message.chatId)) return true;
    for (const chat of this.chats.values()) if (chat.message === message) return true;
    return false;
  }

  isRunning(conversation) {
    return conversation?.messages.some((m) => m.status === "streaming") ?? false;
  }

  // Appends an answer to `conversation` and streams it in once the socket is open.
  start(conversation) {
    const frame = {
      type: "chat",
      chatSettings: { model: conversation.model, temperature: conversation.temperature },
      messages: requestMessages(conversation),
    };
    const message = { id: newId(), role: "assistant", content: "", model: conversation.model };
    conversation.messages.push(message);
    return this.run(conversation, message, frame);
  }

  // Answers `message` again in place (a new version of it, or a retry of a failed one).
  restart(conversation, message) {
    const index = conversation.messages.indexOf(message);
    for (const field of ["error", "errorStatus", "usage", "reasoning", "unwritten"]) delete message[field];
    Object.assign(message, { content: "", model: conversation.model });
    const frame = {
      type: "chat",
      chatSettings: { model: conversation.model, temperature: conversation.temperature },
      messages: requestMessages(conversation, index),
    };
    return this.run(conversation, message, frame);
  }

  // An answer cut short (the server shut down, the connection was lost) goes on where it
  // stopped: a new chat whose messages end with the partial answer, for the model to continue.
  continue(conversation, message) {
    const index = conversation.messages.indexOf(message);
    const frame = {
      type: "chat",
      chatSettings: { model: message.model ?? conversation.model, temperature: conversation.temperature },
      messages: [...requestMessages(conversation, index), { role: "assistant", content: message.content }],
    };
    delete message.error;
    delete message.errorStatus;
    return this.run(conversation, message, frame);
  }

  async run(conversation, message, frame) {
    // Ids first, before anything shows or stores the turn (copies are merged by id).
    this.assignIds?.(conversation, message, frame);
    Object.assign(message, { status: "streaming", chatId: newId(), seq: 0, changedAt: Date.now() });
    frame.id = message.chatId;
    this.events.changed(conversation, message);
    // Until it is tracked, this tab's own: no resume of it starts here, no pull rewrites it.
    this.starting.add(message.chatId);
    try {
      await this.prepare?.(conversation, message, frame);
    } catch (error) {
      // Not written where it belongs (the account's history): not started at all.
      this.starting.delete(message.chatId);
      message.error = `Not saved to your history: ${error.message}`;
      this.end(message.chatId, { conversation, message }, "error");
      return;
    }
    const release = await acquire(lockName(message.chatId));
    this.track(conversation, message, { frame, release });
    this.starting.delete(message.chatId);
  }

  // Every unfinished answer of `conversations` that no tab follows is resumed here.
  adopt(conversations) {
    for (const conversation of conversations) {
      for (const message of conversation.messages) {
        if (message.status === "streaming") this.follow(conversation, message);
      }
    }
  }

  async follow(conversation, message) {
    const { chatId } = message;
    // Streaming when an older page (without chat ids) went away: nothing to resume it by.
    if (!chatId) {
      message.status = "interrupted";
      this.events.ended(conversation, message);
      return;
    }
    if (this.chats.has(chatId) || this.waiting.has(chatId) || this.starting.has(chatId)) return;
    this.waiting.add(chatId);
    const release = await acquire(lockName(chatId));
    this.waiting.delete(chatId);
    await this.events.refresh(conversation);
    // Meanwhile another tab may have finished it, or this tab dropped it.
    if (message.status !== "streaming" || message.chatId !== chatId) {
      release();
      return;
    }
    this.track(conversation, message, { frame: null, release });
  }

  track(conversation, message, { frame, release }) {
    const chat = { conversation, message, ws: null, frame, resuming: false, release };
    this.chats.set(message.chatId, chat);
    if (this.socket.isOpen) this.sendOne(chat);
  }

  sendDetached() {
    for (const chat of this.chats.values()) if (!chat.ws) this.sendOne(chat);
  }

  // A chat not yet sent is sent; one the server already has is resumed after its last seq.
  sendOne(chat) {
    const { message } = chat;
    if (chat.frame) {
      chat.ws = this.socket.send(chat.frame);
      if (chat.ws) chat.frame = null;
      return;
    }
    chat.resuming = true;
    chat.ws = this.socket.send({ type: "resume", id: message.chatId, after: message.seq ?? 0 });
  }

  // Resumed again after a pause that grows with each try (1 s, 2 s, … 10 s at most), on the
  // socket open by then; the answer stays "streaming" meanwhile.
  resumeLater(chat) {
    chat.ws = null;
    chat.resuming = true;
    chat.retries = (chat.retries ?? 0) + 1;
    const delay = Math.min(1000 * 2 ** (chat.retries - 1), 10000);
    setTimeout(() => {
      if (this.chats.get(chat.message.chatId) === chat && !chat.ws && this.socket.isOpen) this.sendOne(chat);
    }, delay);
  }

  stop(conversation) {
    for (const message of conversation.messages) {
      if (message.status !== "streaming") continue;
      const chat = this.chats.get(message.chatId);
      if (chat) this.cancel(chat);
      else if (this.waiting.has(message.chatId)) this.peers.postMessage({ type: "cancel", id: message.chatId });
      else this.end(message.chatId, { conversation, message }, "cancelled");
    }
  }

  cancel(chat) {
    const { message } = chat;
    if (!chat.frame && this.socket.sendOn(chat.ws, { type: "cancel", id: message.chatId })) return;
    // Not sent yet, or its socket is gone: the server may still have it, so tell it anyway.
    if (!chat.frame) this.socket.send({ type: "cancel", id: message.chatId });
    this.end(message.chatId, chat, "cancelled");
  }

  onFrame(frame) {
    const chat = this.chats.get(frame.id);
    if (!chat) {
      if (frame.type === "error" && !this.waiting.has(frame.id)) this.events.stray(frame);
      return;
    }
    const { conversation, message } = chat;
    const seq = typeof frame.seq === "number" ? frame.seq : null;
    if (seq !== null) {
      chat.resuming = false;
      chat.retries = 0;
      if (seq <= (message.seq ?? 0)) return; // replayed: already shown
      message.seq = seq;
    }
    switch (frame.type) {
      case "delta":
        message.content += frame.content;
        this.events.changed(conversation, message);
        break;
      case "reasoning":
        message.reasoning = (message.reasoning ?? "") + frame.content;
        this.events.changed(conversation, message);
        break;
      case "done":
        message.usage = frame.usage ?? null;
        // Kept apart from `status`, which the history's copy may rewrite (it keeps no reason).
        if (frame.finish_reason) message.finish = frame.finish_reason;
        this.end(frame.id, chat, END_STATUS[frame.finish_reason] ?? "done");
        break;
      case "error":
        // The server's chat store is away for now (Redis restarting): the chat may well run on,
        // so it is asked for again, never shown as cut off. A chat never started is an error.
        if (seq === null && frame.status === 503 && (chat.resuming || (message.seq ?? 0) > 0)) {
          this.resumeLater(chat);
          break;
        }
        // A resume the server cannot serve (it no longer has the chat): the answer was cut off.
        if (chat.resuming && seq === null) {
          this.end(frame.id, chat, "interrupted");
          break;
        }
        message.error = frame.retry_after
          ? `${frame.message} (try again in ${frame.retry_after} s)`
          : frame.message;
        message.errorStatus = frame.status;
        // No seq: refused before it started (402, 429, no key), so no history holds it.
        if (seq === null) message.unwritten = true;
        this.end(frame.id, chat, "error");
        break;
    }
  }

  // A message the page no longer shows (its conversation deleted): forget it, keep the server's.
  forget(conversation) {
    for (const [id, chat] of this.chats) {
      if (chat.conversation !== conversation) continue;
      this.chats.delete(id);
      chat.release?.();
    }
  }

  // The lock goes only once the end is stored: a tab that takes the chat over then sees it ended.
  end(id, chat, status) {
    this.chats.delete(id);
    chat.message.status = status;
    Promise.resolve(this.events.ended(chat.conversation, chat.message)).finally(() => chat.release?.());
  }
}
