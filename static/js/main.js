// The chat page: wires the stored conversations, the socket and the views to the page's controls.

import * as api from "./api.js";
import { ChatView } from "./chat-view.js";
import { ChatRunner } from "./chats.js";
import { KeyDialog, LoginDialog } from "./dialogs.js";
import { SettingsPanel } from "./settings.js";
import { Sidebar } from "./sidebar.js";
import { ChatSocket } from "./socket.js";
import { DEFAULT_TITLE, Store } from "./store.js";

const TITLE_CHARS = 40;
const $ = (id) => document.getElementById(id);

function showBanner(text) {
  $("banner-text").textContent = text;
  $("banner").hidden = false;
}

const store = new Store((error) => showBanner(`Conversations could not be saved: ${error.message}`));
const socketScheme = window.location.protocol === "https:" ? "wss" : "ws";
const socket = new ChatSocket(`${socketScheme}://${window.location.host}/api/chat/ws`);
let profile = { openrouter_api_key_set: false, source: null, hint: null };
// The conversation whose answer failed for want of a key: it is retried once a key is saved.
let waitingForKey = null;

const isKeyMissing = (message) => message?.status === "error" && message.error === api.KEY_MISSING;

const runner = new ChatRunner(socket, {
  changed(conversation, message) {
    view.refresh(conversation, message);
    store.saveSoon();
    updateComposer();
  },
  ended(conversation, message) {
    view.refresh(conversation, message);
    store.save();
    updateComposer();
    if (isKeyMissing(message)) {
      waitingForKey = conversation;
      keyDialog.open(profile, message.error);
    }
  },
  stray(frame) {
    showBanner(frame.message);
  },
});

const view = new ChatView($("messages"), {
  edit(index, text) {
    const conversation = store.active;
    conversation.messages.splice(index, Infinity, { role: "user", content: text });
    send(conversation);
  },
  regenerate() {
    regenerate(store.active);
  },
});

const sidebar = new Sidebar($("conversation-list"), {
  select(id) {
    store.select(id);
    showActive();
    toggleSidebar(false);
  },
  rename(id, title) {
    store.rename(id, title);
    renderSidebar();
  },
  remove(id) {
    const conversation = store.conversations.find((c) => c.id === id);
    runner.stop(conversation);
    store.remove(id);
    showActive();
  },
});

const keyDialog = new KeyDialog($("key-dialog"), (saved) => {
  profile = saved;
  showKeyHint();
  socket.reconnect();
  const conversation = waitingForKey;
  waitingForKey = null;
  if (store.conversations.includes(conversation) && isKeyMissing(conversation.messages.at(-1))) {
    regenerate(conversation);
  }
});

const loginDialog = new LoginDialog($("login-dialog"), () => start());
const settings = new SettingsPanel(store);

function renderSidebar() {
  sidebar.show(store.conversations, store.activeId);
}

function showActive() {
  const conversation = store.active;
  renderSidebar();
  view.show(conversation);
  settings.show(conversation);
  updateComposer();
}

function updateComposer() {
  const busy = runner.isRunning(store.active);
  // The button under the keyboard focus is about to hide: hand the focus to the message box.
  const focusLost = document.activeElement === $(busy ? "send" : "stop");
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  if (focusLost) $("prompt").focus();
}

function showKeyHint() {
  $("key-hint").textContent = profile.source === "session" ? profile.hint : "";
}

function send(conversation) {
  if (conversation.title === DEFAULT_TITLE) {
    const first = conversation.messages.find((m) => m.role === "user").content;
    conversation.title = first.replace(/\s+/g, " ").slice(0, TITLE_CHARS);
    renderSidebar();
  }
  runner.start(conversation);
}

function regenerate(conversation) {
  if (runner.isRunning(conversation)) return;
  if (conversation.messages.at(-1)?.role === "assistant") conversation.messages.pop();
  runner.start(conversation);
}

function toggleSidebar(open) {
  document.body.classList.toggle("sidebar-open", open);
  $("scrim").hidden = !open;
  $("toggle-sidebar").setAttribute("aria-expanded", String(open));
}

function setConnection(state, text) {
  $("connection").dataset.state = state;
  $("connection").textContent = text;
}

async function start() {
  try {
    profile = await api.getProfile();
  } catch (error) {
    if (api.isAccessRequired(error)) {
      loginDialog.open();
      return;
    }
    showBanner(error.message);
  }
  showKeyHint();
  socket.connect();
  settings.loadModels();
}

socket.addEventListener("connecting", () => setConnection("connecting", "Connecting…"));
socket.addEventListener("open", () => setConnection("open", "Connected"));
socket.addEventListener("close", async (event) => {
  const { retryInS } = event.detail;
  if (retryInS !== null) setConnection("closed", `Connection lost. Reconnecting in ${retryInS} s…`);
  // A browser cannot read why a handshake failed; the profile route tells whether it was access.
  try {
    await api.getProfile();
  } catch (error) {
    if (api.isAccessRequired(error)) {
      socket.disconnect();
      setConnection("closed", "Signed out");
      loginDialog.open();
    }
  }
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const conversation = store.active;
  const text = $("prompt").value.trim();
  if (!text || runner.isRunning(conversation)) return;
  $("prompt").value = "";
  conversation.messages.push({ role: "user", content: text });
  send(conversation);
});
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => runner.stop(store.active));

$("new-chat").addEventListener("click", () => {
  store.create();
  showActive();
  toggleSidebar(false);
  $("prompt").focus();
});
$("toggle-sidebar").addEventListener("click", () => {
  toggleSidebar(!document.body.classList.contains("sidebar-open"));
});
$("scrim").addEventListener("click", () => toggleSidebar(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") toggleSidebar(false);
});
$("open-key-dialog").addEventListener("click", () => keyDialog.open(profile));
$("banner-close").addEventListener("click", () => {
  $("banner").hidden = true;
});

showActive();
start();
