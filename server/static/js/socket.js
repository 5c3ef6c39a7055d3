// One WebSocket to /api/chat/ws that comes back after a drop, waiting longer each time.
// Events: "connecting", "open", "frame" (detail: the parsed frame), "close" (detail: {retryAt}),
// "offline". A frame's chat stays with the socket it started on: `renew()` opens a new socket
// for new chats and lets the old one finish the chats it carries before it closes.

const BACKOFF_S = [0.5, 1, 2, 4, 8, 15];
const FINAL = new Set(["done", "error"]);

export class ChatSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.wanted = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.chatsOn = new WeakMap(); // socket → ids of the chats it carries
    // Back online: a socket that survived is said to be open again; else try at once.
    window.addEventListener("online", () => (this.isOpen ? this.emit("open") : this.retryNow()));
    window.addEventListener("offline", () => this.emit("offline"));
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  connect() {
    this.wanted = true;
    if (!this.ws) this.retryNow();
  }

  disconnect() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.emit("close", { retryAt: null });
  }

  retryNow() {
    if (!this.wanted || this.ws) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  // The server reads the session (the saved key) at the handshake, so a new key needs a new
  // socket; the chats running on the old one go on there until they end.
  renew() {
    const old = this.ws;
    this.ws = null;
    this.attempt = 0;
    if (old) this.retire(old);
    this.connect();
  }

  retire(ws) {
    ws.retired = true;
    if (!this.chatsOn.get(ws)?.size) ws.close(1000);
  }

  // Sends on the current socket; returns that socket (to send the chat's cancel on) or null.
  send(frame) {
    if (!this.isOpen) return null;
    return this.sendOn(this.ws, frame);
  }

  sendOn(ws, frame) {
    if (ws?.readyState !== WebSocket.OPEN) return null;
    if (frame.type === "chat" || frame.type === "resume") this.chatsOn.get(ws).add(frame.id);
    ws.send(JSON.stringify(frame));
    return ws;
  }

  owns(ws) {
    return ws === this.ws || this.chatsOn.get(ws)?.size > 0;
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.chatsOn.set(ws, new Set());
    this.emit("connecting");
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.emit("open");
    });
    ws.addEventListener("message", (event) => this.onMessage(ws, event.data));
    ws.addEventListener("close", () => {
      this.chatsOn.get(ws).clear();
      this.emit("dropped", { ws });
      if (this.ws !== ws) return;
      this.ws = null;
      this.emit("close", { retryAt: this.wanted ? this.scheduleRetry() : null });
    });
  }

  onMessage(ws, data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    const chats = this.chatsOn.get(ws);
    if (FINAL.has(frame.type) && chats.delete(frame.id) && ws.retired && !chats.size) ws.close(1000);
    this.emit("frame", frame);
  }

  // Returns when the next try will be (ms since the epoch), for the countdown.
  scheduleRetry() {
    const base = BACKOFF_S[Math.min(this.attempt, BACKOFF_S.length - 1)];
    // Jitter, so many pages cut by one server restart do not all come back at once.
    const delayMs = base * (0.8 + Math.random() * 0.4) * 1000;
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    // Offline, a try is pointless: the "online" event tries at once instead.
    this.retryTimer = setTimeout(() => {
      if (navigator.onLine) this.retryNow();
      else this.scheduleRetry();
    }, delayMs);
    return Date.now() + delayMs;
  }

  emit(type, detail = null) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
