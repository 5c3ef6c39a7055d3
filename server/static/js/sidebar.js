// The side list of conversations, most recent first and grouped by day: open one (a link to
// #/c/<id>), rename it in place, delete it, and search titles and text.

const DAY_MS = 24 * 60 * 60 * 1000;

function iconButton(symbol, label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button icon-button";
  button.textContent = symbol;
  button.dataset.action = action;
  button.setAttribute("aria-label", label);
  button.title = label;
  return button;
}

function groupOf(time, now = new Date()) {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  if (time >= today) return "Today";
  if (time >= today - DAY_MS) return "Yesterday";
  if (time >= today - 7 * DAY_MS) return "Previous 7 days";
  return "Earlier";
}

function matches(conversation, query) {
  if (!query) return true;
  if (conversation.title.toLowerCase().includes(query)) return true;
  return conversation.messages.some((m) => m.content?.toLowerCase().includes(query));
}

export class Sidebar {
  // actions: {rename(id, title), remove(id)}
  constructor({ list, search }, actions) {
    this.list = list;
    this.search = search;
    this.actions = actions;
    this.shown = { conversations: [], activeId: null };
    list.addEventListener("click", (event) => this.onClick(event));
    search.addEventListener("input", () => this.render());
  }

  show(conversations, activeId) {
    this.shown = { conversations, activeId };
    this.render();
  }

  render() {
    // A rename in progress is not swept away by a change from elsewhere (a sync, another tab).
    if (this.renaming) return;
    const { conversations, activeId } = this.shown;
    const query = this.search.value.trim().toLowerCase();
    const groups = [];
    let list = null;
    for (const conversation of conversations) {
      // A new chat is listed once it has a message: empty ones never pile up.
      if (conversation.messages.length === 0 || !matches(conversation, query)) continue;
      const name = groupOf(conversation.updatedAt ?? 0);
      if (name !== groups.at(-1)?.dataset.group) {
        const group = document.createElement("li");
        group.dataset.group = name;
        const heading = document.createElement("h2");
        heading.className = "conversation-group";
        heading.textContent = name;
        list = document.createElement("ul");
        group.append(heading, list);
        groups.push(group);
      }
      list.append(this.build(conversation, conversation.id === activeId));
    }
    if (query && !groups.length) {
      const none = document.createElement("li");
      none.className = "conversation-group";
      none.textContent = "No conversation matches.";
      groups.push(none);
    }
    this.list.replaceChildren(...groups);
  }

  build(conversation, active) {
    const item = document.createElement("li");
    item.className = active ? "conversation active" : "conversation";
    item.dataset.id = conversation.id;
    const open = document.createElement("a");
    open.className = "conversation-open";
    open.href = `#/c/${conversation.id}`;
    open.textContent = conversation.title;
    if (active) open.setAttribute("aria-current", "page");
    item.append(
      open,
      iconButton("✎", `Rename “${conversation.title}”`, "rename"),
      iconButton("✕", `Delete “${conversation.title}”`, "delete"),
    );
    return item;
  }

  focusItem(id) {
    this.list.querySelector(`li[data-id="${CSS.escape(id)}"] .conversation-open`)?.focus();
  }

  onClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest("li");
    const { id } = item.dataset;
    const title = item.querySelector(".conversation-open").textContent;
    if (button.dataset.action === "rename") this.startRename(item, id, title);
    else if (button.dataset.action === "delete" && window.confirm(`Delete “${title}”?`)) {
      this.remove(id);
    }
  }

  // The focus goes to the conversation that takes the deleted one's place in the list (the one
  // shown, if deleted, hands it to whatever opens instead: the caller's job).
  async remove(id) {
    const links = () => [...this.list.querySelectorAll(".conversation-open")];
    const at = links().findIndex((link) => link.closest("li").dataset.id === id);
    const wasShown = id === this.shown.activeId;
    await this.actions.remove(id);
    if (wasShown) return;
    const after = links();
    (after[at] ?? after.at(-1) ?? this.search).focus();
  }

  startRename(item, id, title) {
    const input = document.createElement("input");
    input.className = "rename-input";
    input.value = title;
    input.setAttribute("aria-label", "Conversation name");
    let done = false;
    this.renaming = true;
    const finish = (save) => {
      if (done) return;
      done = true;
      this.renaming = false;
      if (save) this.actions.rename(id, input.value);
      else this.render();
      this.focusItem(id);
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      else if (event.key === "Escape") {
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
    item.replaceChildren(input);
    input.focus();
    input.select();
  }
}
