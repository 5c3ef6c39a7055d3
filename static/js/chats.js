// Runs chats over the socket: one `chat` frame out, then every frame for that id fills its message.

import { newId } from "./store.js";

const END_STATUS = { cancelled: "cancelled", length: "length" };

// What the server forwards upstream: the system prompt, then the finished turns.
function requestMessages(conversation) {
  const turns = conversation.messages
    .filter((m) => m.status !== "streaming" && m.status !== "error" && m.content)
    .map(({ role, content }) => ({ role, content }));
  const system = conversation.systemPrompt.trim();
  return system ? [{ role: "system", content: system }, ...turns] : turns;
}

export class ChatRunner {
  // events: {changed(conversation, message), ended(conversation, message), stray(frame)}
  constructor(socket, events) {
    this.socket = socket;
    this.events = events;
    this.running = new Map();
    socket.addEventListener("frame", (event) => this.onFrame(event.detail));
    socket.addEventListener("close", () => this.onClose());
  }

  isRunning(conversation) {
    return conversation.messages.at(-1)?.status === "streaming";
  }

  // Appends an answer to `conversation` and streams it in once the socket is open.
  async start(conversation) {
    const frame = {
      type: "chat",
      id: newId(),
      chatSettings: { model: conversation.model, temperature: conversation.temperature },
      messages: requestMessages(conversation),
    };
    const message = { role: "assistant", content: "", status: "streaming", model: conversation.model };
    conversation.messages.push(message);
    this.events.changed(conversation, message);
    await this.socket.whenOpen();
    // Stopped while the socket was still connecting: nothing to send.
    if (message.status !== "streaming") return;
    this.running.set(frame.id, { conversation, message });
    this.socket.send(frame);
  }

  stop(conversation) {
    const message = conversation.messages.at(-1);
    if (message?.status !== "streaming") return;
    const id = [...this.running].find(([, chat]) => chat.message === message)?.[0];
    if (id && this.socket.send({ type: "cancel", id })) return;
    this.end(id, { conversation, message }, "cancelled");
  }

  onFrame(frame) {
    const chat = this.running.get(frame.id);
    if (!chat) {
      if (frame.type === "error") this.events.stray(frame);
      return;
    }
    const { conversation, message } = chat;
    switch (frame.type) {
      case "delta":
        message.content += frame.content;
        this.events.changed(conversation, message);
        break;
      case "reasoning":
        message.reasoning = (message.reasoning ?? "") + frame.content;
        this.events.changed(conversation, message);
        break;
      case "done":
        this.end(frame.id, chat, END_STATUS[frame.finish_reason] ?? "done");
        break;
      case "error":
        message.error = frame.retry_after
          ? `${frame.message} (try again in ${frame.retry_after} s)`
          : frame.message;
        this.end(frame.id, chat, "error");
        break;
    }
  }

  // The socket went away: the server closed every running chat's upstream with it.
  onClose() {
    for (const [id, chat] of this.running) this.end(id, chat, "interrupted");
  }

  end(id, { conversation, message }, status) {
    this.running.delete(id);
    message.status = status;
    this.events.ended(conversation, message);
  }
}
