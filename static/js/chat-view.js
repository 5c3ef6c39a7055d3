// The message list of the shown conversation: renders it, re-renders streaming answers once per
// animation frame, follows the stream unless the user scrolled up, and offers edit/regenerate.

import { renderMarkdown } from "./markdown.js";

const FOLLOW_SLACK_PX = 48;

const STATUS_NOTES = {
  cancelled: "Stopped.",
  length: "Stopped at the model's length limit.",
  interrupted: "Connection lost: this answer was cut off.",
};

function button(label, action, extra = {}) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "button small";
  element.textContent = label;
  element.dataset.action = action;
  for (const [name, value] of Object.entries(extra)) element.setAttribute(name, value);
  return element;
}

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

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class ChatView {
  // actions: {edit(index, text), regenerate()}
  constructor(container, actions) {
    this.container = container;
    this.actions = actions;
    this.conversation = null;
    this.follow = true;
    this.dirty = new Set();
    this.frame = null;
    container.addEventListener("scroll", () => {
      const { scrollHeight, scrollTop, clientHeight } = container;
      this.follow = scrollHeight - scrollTop - clientHeight < FOLLOW_SLACK_PX;
    });
    container.addEventListener("click", (event) => this.onClick(event));
  }

  get busy() {
    return this.conversation?.messages.at(-1)?.status === "streaming";
  }

  show(conversation) {
    this.conversation = conversation;
    this.follow = true;
    this.renderAll();
  }

  renderAll() {
    this.dirty.clear();
    const { messages } = this.conversation;
    if (messages.length === 0) {
      const empty = element("div", "empty", "Ask anything. The answer streams in here.");
      this.container.replaceChildren(empty);
      return;
    }
    this.container.replaceChildren(...messages.map((message, index) => this.build(message, index)));
    if (this.follow) this.scrollToEnd();
  }

  // A message of `conversation` changed: redraw it with the next frame if it is on screen.
  refresh(conversation, message) {
    if (conversation !== this.conversation) return;
    this.dirty.add(message);
    this.frame ??= requestAnimationFrame(() => this.redraw());
  }

  redraw() {
    this.frame = null;
    const { messages } = this.conversation;
    const changes = [...this.dirty].map((message) => {
      const index = messages.indexOf(message);
      return { message, index, node: this.container.querySelector(`[data-index="${index}"]`) };
    });
    // A new or finished answer also changes which messages offer Edit and Regenerate: redraw all.
    if (changes.some(({ message, node }) => message.status !== "streaming" || !node)) {
      this.renderAll();
      return;
    }
    for (const { message, index, node } of changes) node.replaceWith(this.build(message, index, node));
    this.dirty.clear();
    if (this.follow) this.scrollToEnd();
  }

  scrollToEnd() {
    this.container.scrollTop = this.container.scrollHeight;
  }

  build(message, index, previous = null) {
    const article = element("article", `message ${message.role}`);
    article.dataset.index = index;
    article.dataset.status = message.status ?? "done";
    article.setAttribute("aria-busy", String(message.status === "streaming"));
    const who = message.role === "user" ? "You" : "Assistant";
    article.append(element("div", "message-role", message.model ? `${who} · ${message.model}` : who));
    if (message.reasoning) {
      const details = element("details", "reasoning");
      details.open = previous?.querySelector("details.reasoning")?.open ?? false;
      details.append(element("summary", "", "Reasoning"), element("div", "", message.reasoning));
      article.append(details);
    }
    const body = element("div", "message-body");
    if (message.role === "user") {
      body.textContent = message.content;
    } else if (message.content) {
      renderMarkdown(body, message.content);
    } else if (message.status === "streaming") {
      body.append(element("span", "typing", "Thinking…"));
    }
    article.append(body);
    if (message.status === "error") {
      article.append(element("p", "message-error", message.error));
    } else if (STATUS_NOTES[message.status]) {
      article.append(element("p", "message-note", STATUS_NOTES[message.status]));
    }
    article.append(this.buildActions(message, index));
    return article;
  }

  buildActions(message, index) {
    const actions = element("div", "message-actions");
    if (this.busy) return actions;
    const isLast = index === this.conversation.messages.length - 1;
    if (message.role === "user") {
      actions.append(button("Edit", "edit", { "aria-label": "Edit this message and resend" }));
    } else {
      if (message.content) actions.append(button("Copy", "copy-answer"));
      if (isLast) actions.append(button("Regenerate", "regenerate"));
    }
    return actions;
  }

  onClick(event) {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.classList.contains("copy-code")) {
      copyWithFeedback(target, target.parentElement.querySelector("code").textContent);
      return;
    }
    const index = Number(target.closest("[data-index]")?.dataset.index);
    switch (target.dataset.action) {
      case "edit":
        this.startEdit(target.closest("article"), index);
        break;
      case "copy-answer":
        copyWithFeedback(target, this.conversation.messages[index].content);
        break;
      case "regenerate":
        this.actions.regenerate();
        break;
      case "cancel-edit":
        this.renderAll();
        break;
    }
  }

  startEdit(article, index) {
    const editor = element("form", "edit-form");
    const label = element("label", "visually-hidden", "Edit message");
    const textarea = element("textarea", "edit-input");
    textarea.id = `edit-${index}`;
    label.htmlFor = textarea.id;
    textarea.value = this.conversation.messages[index].content;
    const cancel = button("Cancel", "cancel-edit");
    const send = button("Save & send", "send-edit", { type: "submit" });
    send.classList.add("primary");
    editor.append(label, textarea, element("div", "message-actions"));
    editor.lastChild.append(cancel, send);
    editor.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = textarea.value.trim();
      if (text) this.actions.edit(index, text);
    });
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        editor.requestSubmit();
      } else if (event.key === "Escape") {
        this.renderAll();
      }
    });
    article.replaceChildren(article.firstChild, editor);
    textarea.focus();
  }
}
