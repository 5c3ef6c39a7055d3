// How two copies of one conversation (this tab's, another tab's) become one without losing work.

// A newer run or version of an answer (`changedAt`) beats an older one; within one run, an
// ended answer is further along than a streaming one, then the one that saw more frames.
function progress(message) {
  const ended = message.status === "streaming" ? 0 : 1;
  return [message.changedAt ?? 0, ended, message.seq ?? 0, message.content?.length ?? 0];
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
    // A question is as the newer copy has it (an edit may shorten it); an answer, as above.
    // On a tie the live copy stays: what only this tab knows of it (a length or budget note)
    // is not overwritten by an equal copy from storage.
    const take = own.role === "assistant" ? further(own, other ?? own) !== own : incomingNewer;
    if (other && take) Object.assign(own, other);
    return own;
  });
  if (incomingNewer) {
    const { messages: _, ...fields } = incoming;
    Object.assign(local, fields);
  }
  local.messages = messages;
  return local;
}
