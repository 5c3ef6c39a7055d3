// What the server forwards upstream for a conversation: the system prompt, then the turns that
// worked. A failed turn (its answer an error, or nothing at all) stays on screen but is left out,
// so the next request never carries several user messages in a row.

const failed = (answer) => answer.status === "error" || !answer.content;

// A user message with images goes as content parts: its text, then each image as a data URL.
export function userContent(message) {
  if (!message.images?.length) return message.content;
  const parts = message.content ? [{ type: "text", text: message.content }] : [];
  for (const url of message.images) parts.push({ type: "image_url", image_url: { url } });
  return parts;
}

export function requestMessages(conversation, upTo = conversation.messages.length) {
  const list = conversation.messages.slice(0, upTo);
  const turns = [];
  list.forEach((message, index) => {
    if (message.role === "assistant") {
      if (message.status !== "streaming" && !failed(message)) {
        turns.push({ role: "assistant", content: message.content });
      }
      return;
    }
    const answer = list[index + 1];
    if (answer?.role === "assistant" && failed(answer)) return;
    turns.push({ role: message.role, content: userContent(message) });
  });
  const system = conversation.systemPrompt?.trim();
  return system ? [{ role: "system", content: system }, ...turns] : turns;
}
