// The side list of conversations: open one, rename it in place, delete it.

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

export class Sidebar {
  // actions: {select(id), rename(id, title), remove(id)}
  constructor(list, actions) {
    this.list = list;
    this.actions = actions;
    list.addEventListener("click", (event) => this.onClick(event));
  }

  show(conversations, activeId) {
    this.list.replaceChildren(
      ...conversations.map((conversation) => this.build(conversation, conversation.id === activeId)),
    );
  }

  build(conversation, active) {
    const item = document.createElement("li");
    item.className = active ? "conversation active" : "conversation";
    item.dataset.id = conversation.id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "conversation-open";
    open.dataset.action = "select";
    open.textContent = conversation.title;
    if (active) open.setAttribute("aria-current", "true");
    item.append(
      open,
      iconButton("✎", `Rename “${conversation.title}”`, "rename"),
      iconButton("✕", `Delete “${conversation.title}”`, "delete"),
    );
    return item;
  }

  onClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest("li");
    const { id } = item.dataset;
    const title = item.querySelector(".conversation-open").textContent;
    switch (button.dataset.action) {
      case "select":
        this.actions.select(id);
        break;
      case "rename":
        this.startRename(item, id, title);
        break;
      case "delete":
        if (window.confirm(`Delete “${title}”?`)) this.actions.remove(id);
        break;
    }
  }

  startRename(item, id, title) {
    const input = document.createElement("input");
    input.className = "rename-input";
    input.value = title;
    input.setAttribute("aria-label", "Conversation name");
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      if (save) this.actions.rename(id, input.value);
      else item.replaceWith(this.build({ id, title }, item.classList.contains("active")));
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      else if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    item.replaceChildren(input);
    input.focus();
    input.select();
  }
}
