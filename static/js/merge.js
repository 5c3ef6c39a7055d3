// How two copies of one conversation (this tab's, another tab's) become one without losing work.

// An ended answer is further along than a streaming one; then the one that saw more frames.
function progress(message) {
  return [message.status === "streaming" ? 0 : 1, message.seq ?? 0, message.content?.length ?? 0];
}

function further(a, b) {
  const [pa, pb] = [progress(a), progress(b)];
  for (let i = 0; i < pa.length; i++) if (pa[i] !== pb[i]) return pa[i] > pb[i] ? a : b;
  return a;
}

// Folds `incoming` into `local` in place (the running chats hold references to its messages):
// the newer copy decides the fields and the order of messages; a message both copies have
// keeps whichever is further along.
export function mergeInto(local, incoming) {
  const incomingNewer = (incoming.updatedAt ?? 0) > (local.updatedAt ?? 0);
  const mine = new Map(local.messages.map((message) => [message.id, message]));
  const theirs = new Map(incoming.messages.map((message) => [message.id, message]));
  const order = incomingNewer ? incoming.messages : local.messages;
  const messages = order.map((message) => {
    const own = mine.get(message.id);
    const other = theirs.get(message.id);
    if (!own) return other;
    if (other && further(other, own) === other) Object.assign(own, other);
    return own;
  });
  if (incomingNewer) {
    const { messages: _, ...fields } = incoming;
    Object.assign(local, fields);
  }
  local.messages = messages;
  return local;
}
