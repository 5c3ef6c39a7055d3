// The server's history as the page keeps it: a message's shape, the branch shown, and the
// retry that every history write goes through.

export const time = (iso) => (iso ? Date.parse(iso) : 0);

// A server message as the page keeps one.
export function localMessage(message) {
  // `seen`: the server's version of it that this copy holds.
  const local = { id: message.id, role: message.role, status: message.status ?? "done", seen: message.version };
  if (Array.isArray(message.content)) {
    local.content = message.content.filter((p) => p.type === "text").map((p) => p.text).join("\n");
    const images = message.content.filter((p) => p.type === "image_url").map((p) => p.image_url?.url);
    if (images.length) local.images = images;
  } else {
    local.content = message.content ?? "";
  }
  if (message.reasoning) local.reasoning = message.reasoning;
  if (message.used_tools?.length) local.tools = message.used_tools;
  if (message.model) local.model = message.model;
  if (message.usage) local.usage = message.usage;
  if (message.chat_id) local.chatId = message.chat_id;
  // What the server holds of a question: edited, it becomes a new one (history-sync prepare).
  if (message.role === "user") local.posted = JSON.stringify(message.content ?? "");
  if (message.error) {
    local.error = message.error.message;
    local.errorStatus = message.error.status;
  }
  return local;
}

// The newest branch of the tree: from the root, each time the child written last.
export function newestPath(messages) {
  const children = new Map();
  for (const message of messages) {
    const list = children.get(message.parent_id ?? null) ?? [];
    list.push(message);
    children.set(message.parent_id ?? null, list);
  }
  const path = [];
  let next = children.get(null);
  while (next?.length) {
    const newest = next.reduce((a, b) => (b.version > a.version ? b : a));
    path.push(newest);
    next = children.get(newest.id);
  }
  return path;
}

// A script's function calls (through /v1/responses) are history messages too: a tool's output,
// and an answer that only called tools. The page shows neither (its own chats have no tools,
// and an empty answer would drop its question from the next request); the answer they led to
// says which tools were used. `chain`: messages in order; `callsOf`: a message's tool calls.
// Each message shown, with the names of the tools used since the last one (or null).
export function toolsFolded(chain, callsOf) {
  const shown = [];
  let used = [];
  for (const message of chain) {
    const calls = callsOf(message) ?? [];
    for (const call of calls) {
      const name = call?.function?.name;
      if (typeof name === "string" && name && !used.includes(name)) used.push(name);
    }
    const empty = Array.isArray(message.content) ? !message.content.length : !message.content;
    if (message.role === "tool" || (calls.length && empty)) continue;
    const withTools = message.role === "assistant" && used.length > 0;
    shown.push([message, withTools ? used : null]);
    if (withTools) used = [];
  }
  return shown;
}

// The newest branch as the page shows it: walked through a script's tool turns, then without them.
export const shownPath = (messages) =>
  toolsFolded(newestPath(messages), (m) => m.tool_calls).map(([m, used]) => (used ? { ...m, used_tools: used } : m));

const RETRY_AFTER_MS = [500, 1500, 4000];

// A write tried again when the network or the server failed it: each one is safe to repeat
// (the same id with the same content is not an error, an import adds nothing twice).
export async function retrying(write) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      const transient = error instanceof TypeError || error.status >= 500;
      if (!transient || attempt >= RETRY_AFTER_MS.length) throw error;
      await new Promise((done) => setTimeout(done, RETRY_AFTER_MS[attempt]));
    }
  }
}
