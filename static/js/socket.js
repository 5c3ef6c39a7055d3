// One WebSocket to /api/chat/ws that comes back after a drop, waiting longer each time.
// Events: "connecting", "open", "frame" (detail: the parsed frame), "close" (detail: {retryInS}).

const BACKOFF_S = [0.5, 1, 2, 4, 8, 15];

export class ChatSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.wanted = false;
    this.attempt = 0;
    this.retryTimer = null;
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  connect() {
    this.wanted = true;
    clearTimeout(this.retryTimer);
    if (!this.ws) this.open();
  }

  disconnect() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.closeCurrent();
  }

  // The server reads the session (the saved key) at the handshake, so a new key needs a new socket.
  reconnect() {
    this.closeCurrent();
    this.attempt = 0;
    this.connect();
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  whenOpen() {
    if (this.isOpen) return Promise.resolve();
    return new Promise((resolve) => this.addEventListener("open", () => resolve(), { once: true }));
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.emit("connecting");
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.emit("open");
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.emit("frame", frame);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.emit("close", { retryInS: this.wanted ? this.scheduleRetry() : null });
    });
  }

  closeCurrent() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.close(1000);
    this.emit("close", { retryInS: null });
  }

  scheduleRetry() {
    const base = BACKOFF_S[Math.min(this.attempt, BACKOFF_S.length - 1)];
    // Jitter, so many pages cut by one server restart do not all come back at once.
    const delayS = base * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.open(), delayS * 1000);
    return Math.max(1, Math.round(delayS));
  }

  emit(type, detail = null) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
