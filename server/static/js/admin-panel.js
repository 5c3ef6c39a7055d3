// The admin's dialog: invite links, and every account with its spend this period against its
// budget; an account is disabled or enabled, made admin or not, given a budget, or a link to
// set a new password (there is no mail: the admin hands links over).

import * as accounts from "./accounts-api.js";
import { closeButtons, copyFrom, field, onSubmit, when } from "./forms.js";

const byId = (id) => document.getElementById(id);

function cell(...children) {
  const td = document.createElement("td");
  td.append(...children);
  return td;
}

function button(text, action, label) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "button small";
  node.textContent = text;
  node.dataset.action = action;
  node.setAttribute("aria-label", label);
  return node;
}

function spendOf(budget) {
  if (!budget) return "no budget";
  const spent = `$${(budget.spent_usd ?? 0).toFixed(2)}`;
  return typeof budget.limit_usd === "number" ? `${spent} of $${budget.limit_usd.toFixed(2)}` : `${spent}, no limit`;
}

export class AdminPanel {
  constructor(dialog) {
    this.dialog = dialog;
    this.accounts = [];
    closeButtons(dialog);
    const invite = byId("invite-form");
    onSubmit(invite, async () => {
      const made = await accounts.makeInvite(field(invite, "email").value.trim());
      invite.reset();
      this.showLink(`Invite link, valid until ${when(made.expires_at)}, for one account:`, made.url);
    });
    byId("admin-link-copy").addEventListener("click", () => copyFrom(byId("admin-link-value"), byId("admin-link-copy")));
    byId("admin-accounts").addEventListener("click", (event) => this.onClick(event));
    byId("admin-accounts").addEventListener("submit", (event) => this.onBudget(event));
  }

  async open() {
    byId("admin-link").hidden = true;
    byId("admin-error").textContent = "";
    if (!this.dialog.open) this.dialog.showModal();
    await this.render();
    byId("invite-form").elements.namedItem("email").focus();
  }

  showLink(text, url) {
    byId("admin-link-text").textContent = text;
    byId("admin-link-value").value = url;
    byId("admin-link").hidden = false;
    byId("admin-link-copy").focus();
  }

  async render() {
    try {
      this.accounts = await accounts.listAccounts();
    } catch (error) {
      byId("admin-error").textContent = error.message;
      return;
    }
    byId("admin-accounts").replaceChildren(...this.accounts.map((account) => this.row(account)));
    await this.renderSpend();
  }

  // Every account's spend per period, newest first, each with a bar to compare at a glance.
  async renderSpend() {
    let rows;
    try {
      rows = await accounts.listSpend();
    } catch (error) {
      byId("admin-error").textContent = error.message;
      return;
    }
    const periods = new Map();
    for (const { period_start: start, spent_usd: spent, chats } of rows) {
      const total = periods.get(start) ?? { spent: 0, chats: 0 };
      total.spent += spent ?? 0;
      total.chats += chats ?? 0;
      periods.set(start, total);
    }
    const sorted = [...periods].sort(([a], [b]) => (a < b ? 1 : -1));
    const most = Math.max(0.01, ...sorted.map(([, total]) => total.spent));
    byId("admin-spend").replaceChildren(
      ...sorted.map(([start, total]) => {
        const tr = document.createElement("tr");
        const bar = document.createElement("div");
        bar.className = "spend-bar";
        bar.setAttribute("aria-hidden", "true");
        bar.style.width = `${Math.round((total.spent / most) * 100)}%`;
        tr.append(cell(start), cell(`$${total.spent.toFixed(2)}`, bar), cell(String(total.chats)));
        return tr;
      }),
    );
  }

  row(account) {
    const tr = document.createElement("tr");
    tr.dataset.id = account.id;
    const who = document.createElement("div");
    who.textContent = account.name ? `${account.name} (${account.email})` : account.email;
    const notes = document.createElement("div");
    notes.className = "muted";
    const flags = [account.admin ? "admin" : "", account.disabled ? "disabled" : ""].filter(Boolean);
    notes.textContent = [...flags, `last seen ${when(account.last_seen_at)}`].join(" · ");
    const budget = document.createElement("form");
    budget.className = "inline-form";
    const input = document.createElement("input");
    input.name = "budget";
    input.type = "number";
    input.min = "0";
    input.step = "0.01";
    input.placeholder = "default";
    input.value = account.budget?.limit_usd ?? "";
    input.setAttribute("aria-label", `Budget of ${account.email} in dollars (empty: the default)`);
    const save = button("Save", "budget", `Save the budget of ${account.email}`);
    save.type = "submit";
    budget.append(input, save);
    const actions = [
      button(account.disabled ? "Enable" : "Disable", "disabled", `${account.disabled ? "Enable" : "Disable"} ${account.email}`),
      button(account.admin ? "Remove admin" : "Make admin", "admin", `${account.admin ? "Remove admin from" : "Make admin"} ${account.email}`),
      button("Reset link", "reset", `Password reset link for ${account.email}`),
    ];
    const actionRow = document.createElement("div");
    actionRow.className = "admin-actions";
    actionRow.append(...actions);
    tr.append(cell(who, notes), cell(spendOf(account.budget)), cell(budget), cell(actionRow));
    return tr;
  }

  async change(id, action) {
    const account = this.accounts.find((a) => a.id === id);
    if (action === "reset") {
      const made = await accounts.makeReset(id);
      this.showLink(`A link for ${account.email} to set a new password, valid until ${when(made.expires_at)}:`, made.url);
      return;
    }
    await accounts.changeAccount(id, { [action]: !account[action] });
    await this.render();
    byId("admin-accounts").querySelector(`tr[data-id="${CSS.escape(id)}"] [data-action="${action}"]`)?.focus();
  }

  async onClick(event) {
    const target = event.target.closest("button[data-action]");
    if (!target || target.dataset.action === "budget") return;
    byId("admin-error").textContent = "";
    try {
      await this.change(target.closest("tr").dataset.id, target.dataset.action);
    } catch (error) {
      byId("admin-error").textContent = error.message;
    }
  }

  async onBudget(event) {
    event.preventDefault();
    const id = event.target.closest("tr").dataset.id;
    const value = event.target.elements.namedItem("budget").value.trim();
    byId("admin-error").textContent = "";
    try {
      await accounts.changeAccount(id, { budget_usd: value === "" ? null : Number(value) });
      await this.render();
    } catch (error) {
      byId("admin-error").textContent = error.message;
    }
  }
}
