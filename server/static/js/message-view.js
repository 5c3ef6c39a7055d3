// One message on screen. Built once; a streaming answer only grows (MarkdownStream), a finished
// one is never rebuilt unless its text changed (another tab, Continue). The actions row is
// always there, so nothing jumps when an answer ends.

import { MarkdownStream, renderMarkdown } from "./markdown.js";
import { describeUsage } from "./usage.js";
import { branchLabel, hasBranches, hasVersions, versionLabel } from "./versions.js";

const STATUS_NOTES = {
  cancelled: "Stopped.",
  length: "Stopped at the model's length limit.",
  interrupted: "Connection lost: this answer was cut off.",
};

// An answer the budget cut short says so, and when the budget resets.
function budgetNote(resetsAt) {
  const day = new Date(resetsAt).toLocaleDateString("en", { day: "numeric", month: "long", year: "numeric" });
  return `Stopped: your budget for this period is used up. It resets on ${day}.`;
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function button(label, action, extra = {}) {
  const node = element("button", "button small", label);
  node.type = "button";
  node.dataset.action = action;
  for (const [name, value] of Object.entries(extra)) node.setAttribute(name, value);
  return node;
}

const canContinue = (message) =>
  Boolean(message.content) &&
  (message.errorStatus === 503 || message.status === "interrupted" || message.status === "length");

export class MessageView {
  constructor(message) {
    this.message = message;
    this.article = element("article", `message ${message.role}`);
    this.article.dataset.id = message.id;
    this.role = element("div", "message-role");
    this.renderRole();
    this.body = element("div", "message-body");
    this.note = element("p", "message-note");
    this.note.hidden = true;
    this.actions = element("div", "message-actions");
    this.article.append(this.role, this.body, this.note, this.actions);
    this.stream = null;
    this.shown = null; // the text the body shows, once final
    this.actionsKey = null;
    if (message.role === "user") this.renderUser();
  }

  renderUser() {
    const { message } = this;
    this.shown = message.content;
    this.body.textContent = message.content;
    for (const url of message.images ?? []) {
      const image = element("img", "attachment");
      image.src = url;
      image.alt = "Attached image";
      this.body.append(image);
    }
  }

  // The model that wrote the version shown: Regenerate and a version switch may change it.
  renderRole() {
    const { message } = this;
    const who = message.role === "user" ? "You" : "Assistant";
    const text = message.model ? `${who} · ${message.model}` : who;
    if (this.role.textContent !== text) this.role.textContent = text;
  }

  render() {
    const { message, article } = this;
    this.renderRole();
    const status = message.status ?? "done";
    if (article.dataset.status !== status) {
      article.dataset.status = status;
      article.setAttribute("aria-busy", String(status === "streaming"));
    }
    if (message.role !== "assistant") {
      if (this.shown !== message.content) this.renderUser();
      return;
    }
    this.renderReasoning();
    this.renderTools();
    this.renderBody();
    const error = message.status === "error";
    let note = error ? message.error : (STATUS_NOTES[message.status] ?? "");
    // Set only when the budget cut this answer (main.js): it holds whatever status a merge leaves.
    if (message.budgetResets && !error && message.status !== "streaming") note = budgetNote(message.budgetResets);
    if (this.note.textContent !== note) {
      this.note.className = error ? "message-error" : "message-note";
      this.note.textContent = note;
      this.note.hidden = !note;
    }
  }

  renderBody() {
    const { message } = this;
    if (message.status === "streaming") {
      if (!this.stream) {
        this.body.replaceChildren();
        this.stream = new MarkdownStream(this.body);
        this.shown = null;
      }
      if (!message.content) {
        this.typing ??= this.body.appendChild(element("span", "typing", "Thinking…"));
        return;
      }
      this.typing?.remove();
      this.typing = null;
      this.stream.update(message.content);
      return;
    }
    this.typing?.remove();
    this.typing = null;
    if (this.stream) {
      if (message.content) this.stream.update(message.content, true);
      else this.body.replaceChildren();
      this.stream = null;
      this.shown = message.content;
    } else if (this.shown !== message.content) {
      renderMarkdown(this.body, message.content ?? "");
      this.shown = message.content;
    }
  }

  renderReasoning() {
    const { reasoning } = this.message;
    if (!reasoning) return;
    if (!this.reasoning) {
      this.reasoning = element("details", "reasoning");
      this.reasoningText = element("div", "");
      this.reasoning.append(element("summary", "", "Reasoning"), this.reasoningText);
      this.role.after(this.reasoning);
    }
    if (this.reasoningText.textContent.length !== reasoning.length) {
      this.reasoningText.textContent = reasoning;
    }
  }

  // The tools a script's answer used (history-shapes.js shownPath), in one quiet line.
  renderTools() {
    const text = this.message.tools?.length ? `Used ${this.message.tools.join(", ")}` : "";
    if (!this.tools) {
      if (!text) return;
      this.tools = element("p", "message-tools");
      this.body.before(this.tools);
    }
    if (this.tools.textContent !== text) this.tools.textContent = text;
    this.tools.hidden = !text;
  }

  // Which actions a message offers depends on whether it is the last and whether a chat runs.
  renderActions(isLast, busy) {
    const { message } = this;
    const key = [isLast, busy, message.status, Boolean(message.content), message.usage?.total_tokens];
    key.push(message.version, message.versions?.length, message.branch, message.branches?.length);
    if (String(key) === this.actionsKey) return;
    this.actionsKey = String(key);
    this.actions.classList.toggle("resting", busy);
    const buttons = [];
    if (message.role === "user") {
      if (hasBranches(message)) buttons.push(...this.switchButtons("branch", message.branch, branchLabel(message)));
      buttons.push(button("Edit", "edit", { "aria-label": "Edit this message and resend" }));
    } else if (message.status !== "streaming") {
      if (hasVersions(message)) buttons.push(...this.switchButtons("version", message.version, versionLabel(message)));
      if (message.content) buttons.push(button("Copy", "copy-answer"));
      if (isLast && message.status === "error") buttons.push(button("Retry", "retry"));
      else if (isLast) buttons.push(button("Regenerate", "regenerate"));
      if (isLast && canContinue(message)) buttons.push(button("Continue", "continue"));
      const usage = describeUsage(message.usage, message.model);
      if (usage) buttons.push(element("span", "usage muted", usage));
    }
    this.actions.replaceChildren(...buttons);
  }

  // ‹ 1/2 › for an answer's versions or a question's branches (`action`), `at` the one shown.
  switchButtons(action, at = 0, label) {
    const count = (action === "branch" ? this.message.branches : this.message.versions).length;
    const previous = button("‹", action, { "aria-label": "Previous version", "data-to": at - 1 });
    const next = button("›", action, { "aria-label": "Next version", "data-to": at + 1 });
    previous.disabled = at === 0;
    next.disabled = at === count - 1;
    return [previous, element("span", "version muted", label), next];
  }

  // The answer as plain text, for the screen reader's one announcement.
  get text() {
    return this.body.textContent;
  }
}
