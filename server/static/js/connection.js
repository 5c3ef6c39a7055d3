// The connection line under the message box: connecting, connected, offline, or lost with a
// countdown to the next try and a "Retry now".

export class ConnectionStatus {
  constructor({ line, retryNow }, socket) {
    this.line = line;
    this.retryNow = retryNow;
    this.timer = null;
    socket.addEventListener("connecting", () => this.set("connecting", "Connecting…"));
    socket.addEventListener("open", () => this.set("open", "Connected"));
    socket.addEventListener("offline", () => this.set("closed", "Offline: reconnects when the network is back."));
    socket.addEventListener("close", ({ detail }) => {
      if (detail.retryAt !== null) this.countDown(detail.retryAt);
    });
    retryNow.addEventListener("click", () => socket.retryNow());
  }

  set(state, text, canRetry = false) {
    clearInterval(this.timer);
    this.timer = null;
    this.line.dataset.state = state;
    this.line.textContent = text;
    this.retryNow.hidden = !canRetry;
  }

  countDown(retryAt) {
    if (!navigator.onLine) {
      this.set("closed", "Offline: reconnects when the network is back.");
      return;
    }
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
      this.line.textContent = `Connection lost. Reconnecting in ${seconds} s…`;
    };
    this.set("closed", "", true);
    tick();
    this.timer = setInterval(tick, 1000);
  }
}
