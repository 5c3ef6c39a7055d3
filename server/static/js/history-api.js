// The history routes of a signed-in account (SPEC "History and sync").

import { call } from "./api.js";

// Larger than any version yet (the route takes at most 18 digits): answered with a reset and the version.
const MAX_VERSION = "999999999999999999";
const enc = encodeURIComponent;

export async function listAll() {
  const found = [];
  let before = null;
  do {
    const query = new URLSearchParams({ limit: "200" });
    if (before) query.set("before", before);
    const page = await call("GET", `/api/conversations?${query}`);
    found.push(...page.data);
    before = page.next;
  } while (before);
  return found;
}

export const getConversation = (id) => call("GET", `/api/conversations/${enc(id)}`);
export const createConversation = (id, title) => call("POST", "/api/conversations", { id, title });
export const renameConversation = (id, title) => call("PATCH", `/api/conversations/${enc(id)}`, { title });
export const deleteConversation = (id) => call("DELETE", `/api/conversations/${enc(id)}`);
export const postMessage = (conversationId, message) =>
  call("POST", `/api/conversations/${enc(conversationId)}/messages`, message);
export const importConversations = (conversations) =>
  call("POST", "/api/conversations/import", { format: "chatrelay.conversations", version: 1, conversations });
export const changesSince = (version) => call("GET", `/api/sync?since=${enc(version)}`);
// The account's version now (no changes are after the largest one).
export const currentVersion = async () => (await call("GET", `/api/sync?since=${MAX_VERSION}`)).version;
