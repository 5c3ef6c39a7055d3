// The chat page: wires the stored conversations, the socket and the views to the page's controls.

import { Accounts } from "./accounts.js";
import { cutByBudget } from "./accounts-api.js";
import * as api from "./api.js";
import { ChatView } from "./chat-view.js";
import { setupComposer } from "./composer.js";
import { ChatRunner } from "./chats.js";
import { ConnectionStatus } from "./connection.js";
import { askToMove, KeyDialog, LoginDialog } from "./dialogs.js";
import { Drafts } from "./drafts.js";
import { setupLayout, toggleSidebar } from "./layout.js";
import { SettingsPanel } from "./settings.js";
import { setupShortcuts } from "./shortcuts.js";
import { Sidebar } from "./sidebar.js";
import { ChatSocket } from "./socket.js";
import { ServerHistory } from "./history-sync.js";
import { DEFAULT_TITLE, Store } from "./store.js";
import { foldedForPage, setupTransfer } from "./transfer.js";
import { ui } from "./ui.js";
import { Turns } from "./turns.js";
import { costOf, describeConversation } from "./usage.js";

function showBanner(text) {
  ui.bannerText.textContent = text;
  ui.banner.hidden = false;
}

// Conversations first: nothing else works without them.
const saveFailed = (error) => showBanner(`Conversations could not be saved: ${error.message}`);
const store = await Store.open(saveFailed).catch((error) => {
  showBanner(`This browser cannot keep conversations (${error.message}).`);
  throw error;
});

const drafts = new Drafts();
drafts.keepOnly(store.conversations.map((c) => c.id));

const socketScheme = window.location.protocol === "https:" ? "wss" : "ws";
const socket = new ChatSocket(`${socketScheme}://${window.location.host}/api/chat/ws`);
new ConnectionStatus({ line: ui.connection, retryNow: ui.retryNow }, socket);
let activeId = null;
let profile = { openrouter_api_key_set: false, source: null, hint: null };
// The conversation whose answer failed for want of a key: it is retried once a key is saved.
let waitingForKey = null;

const isKeyMissing = (message) => message?.status === "error" && message.error === api.KEY_MISSING;
const active = () => store.find(activeId);

const runner = new ChatRunner(socket, {
  changed(conversation, message) {
    view.refresh(conversation, message);
    store.touch(conversation, { soon: true });
    if (conversation === active()) updateComposer();
  },
  ended(conversation, message) {
    view.refresh(conversation, message);
    view.announce(conversation, message);
    if (conversation === active()) updateComposer();
    delete message.budgetResets; // a new version of an answer the budget once cut
    accounts.refreshBudget().then((budget) => {
      if (message.finish !== "length" || !cutByBudget(budget, costOf(message.usage, message.model))) return;
      message.status = "length";
      message.budgetResets = budget.resets_at;
      view.refresh(conversation, message);
      store.touch(conversation);
    });
    if (isKeyMissing(message)) {
      waitingForKey = conversation;
      keyDialog.open(profile, message.error);
    }
    return store.touch(conversation);
  },
  refresh: (conversation) => store.refresh(conversation),
  stray(frame) {
    showBanner(frame.message);
  },
});

const view = new ChatView(
  { container: ui.messages, announcer: ui.announcer, jump: ui.jumpLatest },
  {
    edit: (message, text) => turns.edit(active(), message, text),
    regenerate: () => turns.regenerate(active()),
    retry: () => turns.regenerate(active()),
    showVersion(message, index) {
      turns.showVersion(active(), message, index);
      updateComposer();
    },
    showBranch(question, index) {
      turns.showBranch(active(), question, index);
      updateComposer();
    },
    continue(message) {
      runner.continue(active(), message);
      ui.prompt.focus();
    },
  },
);

const sidebar = new Sidebar(
  { list: ui.conversationList, search: ui.search },
  {
    rename(id, title) {
      const conversation = store.find(id);
      conversation.title = title.trim() || DEFAULT_TITLE;
      store.touch(conversation);
      serverHistory.rename(conversation).catch((error) => showBanner(error.message));
      renderSidebar();
    },
    async remove(id) {
      const conversation = store.find(id);
      runner.stop(conversation);
      runner.forget(conversation);
      drafts.set(id, "");
      await serverHistory.remove(conversation);
      await store.remove(id);
      if (id !== activeId) {
        renderSidebar();
        return;
      }
      openConversation(null);
      // The phone's list covers the chat (inert meanwhile): the focus stays in the list.
      (ui.main.inert ? ui.newChat : ui.prompt).focus();
    },
  },
);

const keyDialog = new KeyDialog(ui.keyDialog, (saved) => {
  profile = saved;
  showKeyHint();
  socket.renew();
  const conversation = waitingForKey;
  waitingForKey = null;
  if (store.conversations.includes(conversation) && isKeyMissing(conversation.messages.at(-1))) {
    turns.regenerate(conversation);
  }
});
const loginDialog = new LoginDialog(ui.loginDialog, () => start());
// Signed in: the history is the account's, on the server (kept here too, for speed).
const serverHistory = new ServerHistory(
  store,
  (message) => runner.follows(message),
  (count) => askToMove(ui.moveDialog, count),
).attach(runner, socket, showBanner);
// Signed in or out: the session has a new identity, which the key and the socket hang on.
const accounts = new Accounts(async (session, byUser) => {
  try {
    if (session.account) await serverHistory.start(session.account);
    else await serverHistory.stop();
  } catch (error) {
    showBanner(`History: ${error.message}`);
  }
  // The conversation shown may have moved into the account, or left with it; an empty one
  // becomes the account's.
  openConversation(store.find(activeId) ? activeId : null);
  serverHistory.claim(active());
  if (byUser) start({ renew: true });
});
const settings = new SettingsPanel(ui.settings, (conversation) => store.touch(conversation));
const turns = new Turns(store, runner, { view, settings, renderSidebar: () => renderSidebar() });

function renderSidebar() {
  sidebar.show(store.conversations, activeId);
  const title = active()?.title ?? DEFAULT_TITLE;
  if (ui.chatTitle.textContent !== title) ui.chatTitle.textContent = title;
}

// Shows conversation `id` (from the URL), else the most recent one, else a new one.
function openConversation(id) {
  const conversation =
    store.find(id) ?? (id ? null : store.conversations.find((c) => c.messages.length)) ?? serverHistory.claim(store.create(active()));
  activeId = conversation.id;
  store.dropEmpty(activeId);
  const draft = drafts.get(activeId);
  if (ui.prompt.value !== draft) ui.prompt.value = draft;
  const hash = `#/c/${conversation.id}`;
  if (window.location.hash !== hash) history.replaceState(null, "", hash);
  renderSidebar();
  view.show(conversation);
  settings.show(conversation);
  updateComposer();
}

const route = () => openConversation(/^#\/c\/([\w-]+)$/.exec(window.location.hash)?.[1] ?? null);

function updateComposer() {
  const busy = runner.isRunning(active());
  // The button under the keyboard focus is about to hide: hand the focus to the message box.
  const focusLost = document.activeElement === (busy ? ui.send : ui.stop);
  // Runs on every frame of an answer: write only what changed (a write costs a layout).
  if (ui.send.hidden !== busy) ui.send.hidden = busy;
  if (ui.stop.hidden === busy) ui.stop.hidden = !busy;
  if (focusLost) ui.prompt.focus();
  const usage = describeConversation(active());
  if (ui.conversationUsage.textContent !== usage) ui.conversationUsage.textContent = usage;
}

function showKeyHint() {
  ui.keyHint.textContent = profile.source === "session" ? profile.hint : "";
}

// Shown at once (a hashchange would come later, after a message typed fast went elsewhere).
function newChat() {
  const conversation = serverHistory.claim(store.create(active()));
  history.pushState(null, "", `#/c/${conversation.id}`);
  openConversation(conversation.id);
  toggleSidebar(false);
  ui.prompt.focus();
}

// Before the socket: the profile call gives the browser its session, which the server binds
// this page's chats to (only that session may resume or cancel them).
async function start({ renew = false } = {}) {
  try {
    profile = await api.getProfile();
  } catch (error) {
    if (api.isAccessRequired(error)) {
      loginDialog.open();
      return;
    }
    if (api.isSignInRequired(error)) {
      socket.disconnect();
      await accounts.load();
      accounts.dialog.open("sign-in");
      return;
    }
    showBanner(error.message);
  }
  showKeyHint();
  if (renew) socket.renew();
  else socket.connect();
  settings.loadModels();
  if (!renew) accounts.load();
}

socket.addEventListener("close", async ({ detail }) => {
  if (detail.retryAt === null) return; // closed on purpose (signed out), not refused
  // A browser cannot read why a handshake failed; the profile route tells whether it was access.
  try {
    await api.getProfile();
  } catch (error) {
    if (api.isAccessRequired(error)) {
      socket.disconnect();
      ui.connection.textContent = "Signed out";
      loginDialog.open();
    } else if (api.isSignInRequired(error)) {
      socket.disconnect();
      ui.connection.textContent = "Signed out";
      await accounts.load();
      accounts.dialog.open("sign-in");
    }
  }
});

setupComposer({
  submit(text, images) {
    drafts.set(activeId, "");
    turns.ask(active(), text, images);
    return true;
  },
  editLast() {
    const last = active().messages.findLast((m) => m.role === "user");
    if (last) view.editMessage(last);
    return Boolean(last);
  },
  stop: () => runner.stop(active()),
  busy: () => runner.isRunning(active()),
  error: showBanner,
});
setupShortcuts({ busy: () => runner.isRunning(active()), stop: () => runner.stop(active()), newChat });
ui.newChat.addEventListener("click", newChat);
ui.prompt.addEventListener("input", () => drafts.set(activeId, ui.prompt.value));
ui.conversationList.addEventListener("click", (event) => {
  if (event.target.closest("a.conversation-open")) toggleSidebar(false);
});
// A conversation opened from its link (or Back): its link is redrawn, so the focus goes to
// the message box rather than falling to the page.
window.addEventListener("hashchange", () => {
  route();
  if (!ui.main.inert) ui.prompt.focus();
});
ui.openKeyDialog.addEventListener("click", () => keyDialog.open(profile));
ui.bannerClose.addEventListener("click", () => {
  ui.banner.hidden = true;
});
setupTransfer(ui, {
  conversations: () => store.conversations,
  active,
  async importAll(conversations) {
    // Signed in, an import goes into the account (by id: twice adds nothing), then comes back.
    if (serverHistory.active) return serverHistory.importAll(conversations);
    await store.importAll(conversations.map(foldedForPage));
    renderSidebar();
    view.refreshAll(active());
  },
  error: showBanner,
});
setupLayout();

store.addEventListener("changed", ({ detail: { conversation } }) => {
  runner.adopt([conversation]);
  renderSidebar();
  view.refreshAll(conversation);
  if (conversation === active()) updateComposer();
});
store.addEventListener("removed", ({ detail: { id } }) => {
  if (id === activeId) openConversation(null);
  else renderSidebar();
});
route();
runner.adopt(store.conversations);
start();
