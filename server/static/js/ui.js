// The page's own controls, looked up once when the page loads and then held as references, so
// nothing rendered later (model output included) can stand in for one of them.

const byId = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`The page has no #${id}`);
  return node;
};

export const ui = Object.freeze({
  main: document.querySelector("main"),
  sidebar: byId("sidebar"),
  scrim: byId("scrim"),
  toggleSidebar: byId("toggle-sidebar"),
  newChat: byId("new-chat"),
  search: byId("search"),
  conversationList: byId("conversation-list"),
  openAccount: byId("open-account"),
  openAdmin: byId("open-admin"),
  budgetLeft: byId("budget-left"),
  accountDialog: byId("account-dialog"),
  adminDialog: byId("admin-dialog"),
  openKeyDialog: byId("open-key-dialog"),
  keyHint: byId("key-hint"),
  exportAll: byId("export-all"),
  importButton: byId("import"),
  importFile: byId("import-file"),
  exportMarkdown: byId("export-markdown"),
  banner: byId("banner"),
  bannerText: byId("banner-text"),
  bannerClose: byId("banner-close"),
  chatTitle: byId("chat-title"),
  messages: byId("messages"),
  announcer: byId("announcer"),
  jumpLatest: byId("jump-latest"),
  composer: byId("composer"),
  attachments: byId("attachments"),
  attach: byId("attach"),
  attachFile: byId("attach-file"),
  prompt: byId("prompt"),
  send: byId("send"),
  stop: byId("stop"),
  connection: byId("connection"),
  retryNow: byId("retry-now"),
  conversationUsage: byId("conversation-usage"),
  keyDialog: byId("key-dialog"),
  loginDialog: byId("login-dialog"),
  moveDialog: byId("move-dialog"),
  settings: {
    panel: byId("settings"),
    toggle: byId("toggle-settings"),
    model: byId("model"),
    options: byId("model-list"),
    temperature: byId("temperature"),
    temperatureValue: byId("temperature-value"),
    systemPrompt: byId("system-prompt"),
    status: byId("models-status"),
  },
});
