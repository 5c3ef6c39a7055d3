// Export and import: every conversation as one JSON file (import merges by id), and the shown
// one as Markdown.

import { toolsFolded } from "./history-shapes.js";

const FORMAT = "chatrelay.conversations";

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const stamp = () => new Date().toISOString().slice(0, 10);

export function exportAll(conversations) {
  const kept = conversations.filter((c) => c.messages.length);
  const data = { format: FORMAT, version: 1, exportedAt: new Date().toISOString(), conversations: kept };
  download(`chatrelay-${stamp()}.json`, "application/json", JSON.stringify(data, null, 2));
}

export function toMarkdown(conversation) {
  const lines = [`# ${conversation.title}`, ""];
  if (conversation.systemPrompt?.trim()) lines.push(`> System: ${conversation.systemPrompt.trim()}`, "");
  for (const message of conversation.messages) {
    const who = message.role === "user" ? "You" : `Assistant${message.model ? ` (${message.model})` : ""}`;
    lines.push(`## ${who}`, "", message.content ?? "", "");
    if (message.status === "error") lines.push(`*Error: ${message.error}*`, "");
  }
  return lines.join("\n");
}

export function exportMarkdown(conversation) {
  const name = conversation.title.replace(/[^\w-]+/g, "-").slice(0, 40) || "conversation";
  download(`${name}.md`, "text/markdown", toMarkdown(conversation));
}

const isConversation = (c) =>
  c && typeof c.id === "string" && typeof c.title === "string" && Array.isArray(c.messages);

// The conversations of an exported file, checked enough that a bad file breaks nothing.
export async function readExport(file) {
  let data;
  try {
    data = JSON.parse(await file.text());
  } catch {
    throw new Error(`${file.name} is not JSON.`);
  }
  const conversations = Array.isArray(data) ? data : data?.conversations;
  if (!Array.isArray(conversations) || !conversations.every(isConversation)) {
    throw new Error(`${file.name} is not an export of chatrelay conversations.`);
  }
  for (const conversation of conversations) {
    conversation.updatedAt ??= Date.now();
    conversation.systemPrompt ??= "";
    for (const message of conversation.messages) {
      message.id ??= crypto.getRandomValues(new Uint32Array(3)).join("-");
      // An answer that was streaming in the exporting browser cannot be resumed here.
      if (message.status === "streaming") message.status = "interrupted";
    }
  }
  return conversations;
}

// A conversation of the server's export kept in this browser (signed out) shows as the page
// shows it signed in: without a script's tool outputs and tool-call-only answers.
export function foldedForPage(conversation) {
  const shown = toolsFolded(conversation.messages, (m) => m.toolCalls);
  conversation.messages = shown.map(([m, used]) => (used ? { ...m, tools: used } : m));
  return conversation;
}

// The buttons: Export all, Import (a file chooser), and the shown conversation as Markdown.
// hooks: {conversations(), active(), importAll(list) → promise, error(text)}
export function setupTransfer(ui, hooks) {
  ui.exportAll.addEventListener("click", () => exportAll(hooks.conversations()));
  ui.exportMarkdown.addEventListener("click", () => exportMarkdown(hooks.active()));
  ui.importButton.addEventListener("click", () => ui.importFile.click());
  ui.importFile.addEventListener("change", async () => {
    const [file] = ui.importFile.files;
    ui.importFile.value = "";
    if (!file) return;
    try {
      await hooks.importAll(await readExport(file));
    } catch (error) {
      hooks.error(error.message);
    }
  });
}
