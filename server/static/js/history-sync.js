// A signed-in account's history is the server's (SPEC "History and sync"). The browser keeps
// a copy of each of the account's conversations in its store (marked with `owner`), for speed
// and offline reading: pulled whole at sign-in, then per change on each `sync` frame and each
// reconnect. What the user does is written through the routes first: a question is posted
// before its chat starts, and the chat carries `conversation`, so the server writes the answer
// itself, even if every device is closed before it ends. Each device shows the newest branch
// of the tree; the versions and branches made here stay browsable here.

import * as history from "./history-api.js";
import { localMessage, retrying, shownPath, time } from "./history-shapes.js";
import { userContent } from "./request.js";
import { newId } from "./store.js";

const versionKey = (accountId) => `chatrelay.history.${accountId}.version`;

const ENDED = new Set(["done", "length", "cancelled", "error"]);

// An answer the server never had (its chat was refused before it started: a 402, a 429, no
// key) follows its question on the page only: the server's path ends at the question, and
// the refusal would vanish with the next pull.
function unwrittenErrors(local, shown, theirs) {
  const known = new Set(theirs.map((m) => m.id));
  const at = local.findIndex((m) => m.id === shown.at(-1)?.id);
  if (at < 0) return [];
  const kept = [];
  for (const message of local.slice(at + 1)) {
    if (known.has(message.id) || !message.unwritten) break;
    kept.push(message);
  }
  return kept;
}

export class ServerHistory {
  // store: the page's Store; isRunning(message): this tab streams that answer itself;
  // askToMove(count) → true, false or null (not now): the user's answer to moving.
  constructor(store, isRunning, askToMove) {
    this.store = store;
    this.isRunning = isRunning;
    this.askToMove = askToMove;
    this.accountId = null;
    this.pulling = null;
    this.again = false;
  }

  get active() {
    return this.accountId !== null;
  }

  owns(conversation) {
    return this.active && conversation?.owner === this.accountId;
  }

  // Signed in: the browser's own conversations may move into the account, then the pull.
  async start(account) {
    this.accountId = account.id;
    await this.forgetAllBut(account.id);
    await this.offerMove();
    await this.pull();
  }

  // Signed out (here, or the session ended elsewhere): no account's copies stay in this browser.
  async stop() {
    if (this.accountId) localStorage.removeItem(versionKey(this.accountId));
    this.accountId = null;
    await this.forgetAllBut(null);
  }

  async forgetAllBut(accountId) {
    for (const conversation of [...this.store.conversations]) {
      if (conversation.owner && conversation.owner !== accountId) await this.store.remove(conversation.id);
    }
  }

  // Asked once per account in this browser (moving twice would add nothing anyway).
  async offerMove() {
    const local = this.store.conversations.filter((c) => !c.owner && c.messages.length);
    const asked = `chatrelay.history.${this.accountId}.offered`;
    if (!local.length || localStorage.getItem(asked)) return;
    const move = await this.askToMove(local.length);
    if (move === null) return;
    localStorage.setItem(asked, "1");
    if (!move) return;
    await retrying(() => history.importConversations(local));
    // They come back from the server, the same ids, as the account's.
    for (const conversation of local) await this.store.remove(conversation.id);
  }

  async importAll(conversations) {
    await retrying(() => history.importConversations(conversations));
    await this.pull();
  }

  // Pulls what changed since the last pull; one at a time, and again if asked meanwhile.
  pull() {
    if (!this.active) return Promise.resolve();
    if (this.pulling) {
      this.again = true;
      return this.pulling;
    }
    this.pulling = (async () => {
      try {
        do {
          this.again = false;
          await this.pullOnce();
        } while (this.again && this.active);
      } finally {
        this.pulling = null;
      }
    })();
    return this.pulling;
  }

  async pullOnce() {
    const accountId = this.accountId;
    const saved = localStorage.getItem(versionKey(accountId));
    if (saved === null) {
      await this.reload(accountId);
      return;
    }
    let since = Number(saved);
    const touched = new Set();
    for (;;) {
      const page = await history.changesSince(since);
      if (page.reset) {
        await this.reload(accountId);
        return;
      }
      for (const { kind, op, data } of page.changes) this.note(kind, op, data, touched);
      since = page.version;
      if (!page.more) break;
    }
    for (const id of touched) await this.fetch(id);
    if (this.accountId === accountId) localStorage.setItem(versionKey(accountId), String(since));
  }

  note(kind, op, data, touched) {
    if (kind === "conversation" && op === "delete") {
      touched.delete(data.id);
      if (this.store.find(data.id)) this.store.discard(data.id);
      return;
    }
    if (kind === "conversation") touched.add(data.id);
    else if (data.conversation_id) touched.add(data.conversation_id);
    else {
      const holder = this.store.conversations.find((c) => c.messages.some((m) => m.id === data.id));
      if (holder) touched.add(holder.id);
    }
  }

  // Everything again: the version first, so nothing written meanwhile is missed.
  async reload(accountId) {
    const version = await history.currentVersion();
    const listed = await history.listAll();
    const ids = new Set(listed.map((c) => c.id));
    for (const conversation of [...this.store.conversations]) {
      const gone = conversation.owner === accountId && !conversation.pending && !ids.has(conversation.id);
      if (gone) await this.store.discard(conversation.id);
    }
    for (const summary of listed) {
      const local = this.store.find(summary.id);
      if (!local || local.serverVersion !== summary.version) await this.fetch(summary.id);
    }
    if (this.accountId === accountId) localStorage.setItem(versionKey(accountId), String(version));
  }

  async fetch(id) {
    let found;
    try {
      found = await history.getConversation(id);
    } catch (error) {
      if (error.status === 404) {
        if (this.store.find(id)) await this.store.discard(id);
        return;
      }
      throw error;
    }
    this.apply(found.conversation, found.messages);
  }

  // The server's copy folded into the page's: the same message objects where they exist (a
  // running chat holds references to them); an answer this tab streams is left to its stream.
  apply(summary, messages) {
    const path = shownPath(messages.filter((m) => m.role !== "system"));
    const system = messages.find((m) => m.role === "system" && m.parent_id === null);
    const local = this.store.find(summary.id);
    const mine = new Map((local?.messages ?? []).map((m) => [m.id, m]));
    // Only what the server wrote since this page last saw it: a version or branch the user
    // switched to here stays shown.
    const update = (own, message) => {
      if (own.seen === message.version) return;
      const fresh = localMessage(message);
      // An answer goes from streaming to its end once, and the server writes the end before
      // this tab hears it: a copy still streaming was read before, and must not undo the end.
      if (fresh.status === "streaming" && ENDED.has(own.status)) return;
      // The server keeps no finish reason: an answer seen here to stop at its length limit stays so.
      if ((own.status === "length" || own.finish === "length") && fresh.status === "done") fresh.status = "length";
      Object.assign(own, fresh);
    };
    let shown;
    if (local?.messages.some((m) => this.isRunning(m))) {
      // This tab is writing here (a question being posted, an answer streaming): its order
      // stands until the chat ends, whose own sync brings the server's.
      const theirs = new Map(messages.map((m) => [m.id, m]));
      for (const own of local.messages) {
        if (theirs.has(own.id) && !this.isRunning(own)) update(own, theirs.get(own.id));
      }
      shown = local.messages;
    } else {
      shown = path.map((message) => {
        const own = mine.get(message.id);
        if (!own) return localMessage(message);
        update(own, message);
        return own;
      });
      shown.push(...unwrittenErrors(local?.messages ?? [], shown, messages));
    }
    const conversation = local ?? {
      id: summary.id,
      model: shown.findLast((m) => m.model)?.model ?? "openai/gpt-4o-mini",
      temperature: 0.7,
      systemPrompt: "",
    };
    Object.assign(conversation, {
      title: summary.title || "New chat",
      messages: shown,
      owner: this.accountId,
      serverVersion: summary.version,
      updatedAt: Math.max(time(summary.updated_at), local?.updatedAt ?? 0),
    });
    if (system && !local) conversation.systemPrompt = localMessage(system).content;
    this.store.adopt(conversation);
  }

  // Wired to the page: the runner asks before each chat, the socket's sync frames and
  // reconnects pull. Returns this.
  attach(runner, socket, onError) {
    runner.assignIds = (conversation, answer, frame) => this.assignIds(conversation, answer, frame);
    runner.prepare = (conversation, answer, frame) => this.prepare(conversation, answer, frame);
    const pull = () => this.pull().catch((error) => onError(`History: ${error.message}`));
    socket.addEventListener("open", pull);
    socket.addEventListener("frame", ({ detail }) => {
      if (detail.type === "sync") pull();
    });
    return this;
  }

  // --- writes ---

  // A conversation started while signed in is the account's (one from before stays local
  // unless moved); it is written on the server with its first question.
  claim(conversation) {
    if (this.active && !conversation.messages.length) {
      conversation.owner = this.accountId;
      conversation.pending = true;
    }
    return conversation;
  }

  // Before a chat of an owned conversation shows: the server never overwrites a message, so
  // an edited question and every new answer get ids of their own (the versions made here stay
  // browsable here). A continued answer is not written there.
  assignIds(conversation, answer, frame) {
    if (!this.owns(conversation) || frame.messages.at(-1)?.role === "assistant") return;
    const index = conversation.messages.indexOf(answer);
    for (const message of conversation.messages.slice(0, index)) {
      if (message.role !== "user" || message.posted === undefined) continue;
      if (message.posted !== JSON.stringify(userContent(message))) {
        message.id = newId();
        delete message.posted;
      }
    }
    answer.id = newId();
  }

  // Then, before it is sent: the conversation and every question on the way to `answer` are on
  // the server, and the chat names where its answer goes.
  async prepare(conversation, answer, frame) {
    if (!this.owns(conversation) || frame.messages.at(-1)?.role === "assistant") return;
    if (conversation.pending) {
      await retrying(() => history.createConversation(conversation.id, conversation.title));
      delete conversation.pending;
    }
    const index = conversation.messages.indexOf(answer);
    let parent = null;
    for (const message of conversation.messages.slice(0, index)) {
      if (message.role === "user" && message.posted === undefined) {
        const content = userContent(message);
        const posted = { id: message.id, parent_id: parent, role: "user", content };
        await retrying(() => history.postMessage(conversation.id, posted));
        message.posted = JSON.stringify(content);
      }
      if (!message.unwritten) parent = message.id; // a refusal is not on the server
    }
    frame.conversation = { id: conversation.id, parent_id: parent, message_id: answer.id };
  }

  async rename(conversation) {
    if (this.owns(conversation)) await history.renameConversation(conversation.id, conversation.title);
  }

  async remove(conversation) {
    if (this.owns(conversation)) await history.deleteConversation(conversation.id).catch(() => null);
  }
}
