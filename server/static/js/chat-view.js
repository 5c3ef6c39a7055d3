// The message list of the shown conversation. Each message has one view, built once and kept;
// a change redraws only the messages that changed, once per animation frame. Follows the stream
// unless the user scrolled up (then offers "Jump to latest"), and announces each answer once.

import { element, MessageView } from "./message-view.js";

const FOLLOW_SLACK_PX = 48;
const DRAW_EVERY_MS = 50;
const CHARS_PER_EXTRA_MS = 1000; // a 100,000-character answer is drawn every 150 ms
const DRAW_AT_LEAST_EVERY_MS = 150;
const ANNOUNCE_CHARS = 1500;

async function copyWithFeedback(target, text) {
  const label = target.textContent;
  try {
    await navigator.clipboard.writeText(text);
    target.textContent = "Copied";
  } catch {
    target.textContent = "Copy failed";
  }
  setTimeout(() => {
    target.textContent = label;
  }, 1500);
}

export class ChatView {
  // actions: {edit(message, text), regenerate(), retry(), continue(message), showVersion(message, i),
  //   showBranch(question, i)}
  constructor({ container, announcer, jump }, actions) {
    this.container = container;
    this.announcer = announcer;
    this.jump = jump;
    this.actions = actions;
    this.conversation = null;
    this.views = new Map(); // message id → MessageView
    this.follow = true;
    this.dirty = new Set();
    this.timer = null; // waits out DRAW_EVERY_MS
    this.frame = null; // then waits for the animation frame
    this.drawnAt = 0;
    this.editing = null; // the open edit box: {view, text, close(refocus)}
    container.addEventListener("scroll", () => {
      const { scrollHeight, scrollTop, clientHeight } = container;
      this.follow = scrollHeight - scrollTop - clientHeight < FOLLOW_SLACK_PX;
      this.showJump();
    });
    container.addEventListener("click", (event) => this.onClick(event));
    jump.addEventListener("click", () => {
      this.follow = true;
      this.scrollToEnd();
      this.showJump();
    });
  }

  get busy() {
    return this.conversation?.messages.some((m) => m.status === "streaming") ?? false;
  }

  show(conversation) {
    this.editing = null;
    this.conversation = conversation;
    this.views.clear();
    this.container.replaceChildren();
    this.follow = true;
    for (const message of conversation.messages) this.dirty.add(message);
    this.redraw();
  }

  // A message of `conversation` changed: redraw it with a coming frame if it is on screen. A
  // stream is drawn at most every DRAW_EVERY_MS, a little less often as the answer grows: each
  // drawing costs a layout and a paint that grow with it, and text growing 10 to 20 times a
  // second reads as smooth as 60.
  refresh(conversation, message) {
    if (conversation !== this.conversation) return;
    if (message) this.dirty.add(message);
    if (this.timer !== null || this.frame !== null) return;
    const length = message?.content?.length ?? 0;
    const every = Math.min(DRAW_EVERY_MS + length / CHARS_PER_EXTRA_MS, DRAW_AT_LEAST_EVERY_MS);
    const wait = Math.max(0, this.drawnAt + every - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.frame = requestAnimationFrame(() => this.redraw());
    }, wait);
  }

  // All of it may have changed (another tab, an import): redraw what differs.
  refreshAll(conversation) {
    if (conversation !== this.conversation) return;
    for (const message of conversation.messages) this.dirty.add(message);
    this.refresh(conversation);
  }

  redraw() {
    clearTimeout(this.timer);
    cancelAnimationFrame(this.frame);
    this.timer = null;
    this.frame = null;
    this.drawnAt = performance.now();
    const { messages } = this.conversation;
    this.placeViews(messages);
    const busy = this.busy;
    messages.forEach((message, index) => {
      const view = this.views.get(message.id);
      if (this.dirty.has(message)) view.render();
      view.renderActions(index === messages.length - 1, busy);
    });
    this.dirty.clear();
    this.closeStaleEdit();
    if (this.follow) this.scrollToEnd();
    this.showJump();
  }

  // Puts one view per message in order, reusing the views that exist.
  placeViews(messages) {
    if (messages.length === 0) {
      this.views.clear();
      this.container.replaceChildren(element("div", "empty", "Ask anything. The answer streams in here."));
      return;
    }
    const wanted = new Set(messages.map((m) => m.id));
    for (const [id, view] of this.views) {
      if (!wanted.has(id)) {
        view.article.remove();
        this.views.delete(id);
      }
    }
    this.container.querySelector(":scope > .empty")?.remove();
    let at = this.container.firstElementChild;
    for (const message of messages) {
      let view = this.views.get(message.id);
      if (!view || view.message !== message) {
        view?.article.remove();
        view = new MessageView(message);
        this.views.set(message.id, view);
        this.dirty.add(message);
      }
      if (view.article !== at) this.container.insertBefore(view.article, at);
      at = view.article.nextElementSibling;
    }
  }

  // The answer ended: say it once, politely (the message list itself is not a live region).
  announce(conversation, message) {
    if (conversation !== this.conversation || message.role !== "assistant") return;
    this.redraw();
    const view = this.views.get(message.id);
    const text = view?.text.trim() ?? "";
    const spoken = text.length > ANNOUNCE_CHARS ? `${text.slice(0, ANNOUNCE_CHARS)}…` : text;
    const note = message.status === "error" ? `Error: ${message.error}` : view?.note.textContent;
    this.announcer.textContent = ["Answer:", spoken, note].filter(Boolean).join(" ");
  }

  scrollToEnd() {
    this.container.scrollTop = this.container.scrollHeight;
  }

  // Offered whenever the end is out of sight, during an answer or after it.
  showJump() {
    const hidden = this.follow;
    if (this.jump.hidden !== hidden) this.jump.hidden = hidden;
  }

  onClick(event) {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.classList.contains("copy-code")) {
      copyWithFeedback(target, target.closest(".code-block").querySelector("code").textContent);
      return;
    }
    const id = target.closest("article")?.dataset.id;
    const view = this.views.get(id);
    if (!view) return;
    switch (target.dataset.action) {
      case "edit":
        this.startEdit(view);
        break;
      case "copy-answer":
        copyWithFeedback(target, view.message.content);
        break;
      case "regenerate":
        this.actions.regenerate();
        break;
      case "retry":
        this.actions.retry();
        break;
      case "continue":
        this.actions.continue(view.message);
        break;
      case "version":
        this.actions.showVersion(view.message, Number(target.dataset.to));
        break;
      case "branch":
        this.actions.showBranch(view.message, Number(target.dataset.to));
        break;
    }
  }

  editMessage(message) {
    const view = this.views.get(message.id);
    if (view) this.startEdit(view);
  }

  // One edit box at a time. It closes once sent, and when its question changes under it (a
  // version or branch shown): it never offers text that is no longer the question.
  startEdit(view) {
    this.editing?.close(false);
    const { article, message } = view;
    const editor = element("form", "edit-form");
    const label = element("label", "visually-hidden", "Edit message");
    const textarea = element("textarea", "edit-input");
    textarea.id = `edit-${message.id}`;
    label.htmlFor = textarea.id;
    textarea.value = message.content;
    const cancel = element("button", "button small", "Cancel");
    cancel.type = "button";
    const send = element("button", "button small primary", "Save & send");
    send.type = "submit";
    const row = element("div", "message-actions");
    row.append(cancel, send);
    editor.append(label, textarea, row);
    const editing = {
      view,
      text: message.content,
      close: (refocus = true) => {
        if (this.editing !== editing) return;
        this.editing = null;
        const hadFocus = editor.contains(document.activeElement);
        editor.remove();
        view.body.hidden = false;
        view.actions.hidden = false;
        if (refocus || hadFocus) view.actions.querySelector("[data-action=edit]")?.focus();
      },
    };
    this.editing = editing;
    editor.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = textarea.value.trim();
      if (!text) return;
      editing.close(false);
      this.actions.edit(message, text);
    });
    cancel.addEventListener("click", () => editing.close());
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        editor.requestSubmit();
      } else if (event.key === "Escape") {
        event.stopPropagation();
        editing.close();
      }
    });
    view.body.hidden = true;
    view.actions.hidden = true;
    article.append(editor);
    textarea.focus();
  }

  // After a redraw: an edit box whose question is gone or changed closes.
  closeStaleEdit() {
    const { editing } = this;
    if (!editing) return;
    const { view } = editing;
    if (this.views.get(view.message.id) !== view || view.message.content !== editing.text) editing.close(false);
  }
}
