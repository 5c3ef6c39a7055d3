// What a user does to a conversation's turns: send a message, regenerate or retry the last
// answer (a good answer replaced is kept as a version), edit a question, browse versions.

import { rememberModel } from "./settings.js";
import { DEFAULT_TITLE, newId } from "./store.js";
import { ui } from "./ui.js";
import { addBranch, addVersion, showBranch, showVersion } from "./versions.js";

const TITLE_CHARS = 40;

// The words of Markdown, without its marks: headings, emphasis, code ticks, links, images.
function plainText(markdown) {
  return markdown
    .replace(/^\s*(?:`{3,}|~{3,}).*$/gm, "")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+)/gm, "")
    .replace(/(`+)([^`]+?)\1/g, "$2")
    .replace(/(^|\W)(\*\*|__|\*|_|~~)(\S(?:.*?\S)??)\2(?=\W|$)/g, "$1$3");
}

function titleOf(conversation) {
  const first = conversation.messages.find((m) => m.role === "user");
  const text = plainText(first.content).trim() || (first.images?.length ? "Image" : DEFAULT_TITLE);
  return text.replace(/\s+/g, " ").slice(0, TITLE_CHARS);
}

export class Turns {
  // shown: {view, settings, renderSidebar()}: what shows the conversation's changes.
  constructor(store, runner, shown) {
    this.store = store;
    this.runner = runner;
    this.shown = shown;
  }

  // Answers the last message (the user's), after a new question or an edit.
  send(conversation) {
    if (conversation.title === DEFAULT_TITLE) conversation.title = titleOf(conversation);
    rememberModel(conversation.model);
    this.runner.start(conversation);
    this.changed(conversation);
    this.shown.settings.renderOptions();
  }

  ask(conversation, text, images) {
    conversation.messages.push({ id: newId(), role: "user", content: text, ...(images.length && { images }) });
    this.send(conversation);
  }

  // A new answer to the last question (edited to `text`, if given).
  regenerate(conversation, text) {
    if (this.runner.isRunning(conversation)) return;
    const answer = conversation.messages.at(-1);
    if (answer?.role !== "assistant") {
      this.send(conversation);
      return;
    }
    const question = conversation.messages.at(-2);
    if (answer.content && answer.status !== "error") addVersion(answer, question);
    if (text !== undefined && question) question.content = text;
    this.runner.restart(conversation, answer);
    this.changed(conversation);
  }

  // The last question edited keeps the old exchange as a version of its answer; an earlier one
  // keeps the turns after it as a branch of the question, and the conversation goes on from it.
  edit(conversation, message, text) {
    if (this.runner.isRunning(conversation)) return;
    const { messages } = conversation;
    const index = messages.indexOf(message);
    if (messages[index + 1]?.role === "assistant" && index + 2 === messages.length) {
      this.regenerate(conversation, text);
      return;
    }
    addBranch(messages, index, text);
    this.send(conversation);
  }

  showBranch(conversation, question, index) {
    if (this.runner.isRunning(conversation)) return;
    showBranch(conversation.messages, conversation.messages.indexOf(question), index);
    this.store.touch(conversation);
    this.shown.view.refreshAll(conversation);
    this.shown.renderSidebar();
  }

  showVersion(conversation, answer, index) {
    const question = conversation.messages[conversation.messages.indexOf(answer) - 1];
    showVersion(answer, question, index);
    this.store.touch(conversation);
    this.shown.view.refreshAll(conversation);
  }

  changed(conversation) {
    this.store.touch(conversation, { activity: true });
    this.shown.view.refreshAll(conversation);
    this.shown.renderSidebar();
    ui.prompt.focus();
  }
}
