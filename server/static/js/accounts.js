// Accounts on the page: the sidebar's "Sign in" (or the account's name) and "Admin" buttons,
// the budget left, and the links that open the page on a form (?invite=…, ?reset=…). Without
// an account store on the server (an older server, or its database down) they stay hidden and
// the page works as it always did.

import * as accounts from "./accounts-api.js";
import { AccountDialog } from "./account-dialog.js";
import { AdminPanel } from "./admin-panel.js";
import { ui } from "./ui.js";

export class Accounts {
  // changed(session, byUser): signed in or out, by the user here (else: found so at load).
  constructor(changed) {
    this.changed = changed;
    this.session = { account: null, budget: null };
    this.dialog = new AccountDialog(ui.accountDialog, (session) => this.set(session, true));
    this.admin = new AdminPanel(ui.adminDialog);
    ui.openAccount.addEventListener("click", () => this.dialog.open());
    ui.openAdmin.addEventListener("click", () => this.admin.open());
  }

  get account() {
    return this.session.account;
  }

  // The session as the server has it; then a link in the address bar opens its form.
  async load() {
    try {
      this.set(await accounts.getSession(), false);
    } catch {
      ui.openAccount.hidden = true;
      return;
    }
    ui.openAccount.hidden = false;
    const params = new URLSearchParams(window.location.search);
    if (params.get("reset")) this.dialog.openReset(params.get("reset"));
    else if (params.get("invite") && !this.account) this.dialog.openInvite(params.get("invite"));
  }

  // After an answer: a metered account's budget left has changed.
  // Returns the budget as it is now (null: none, or unknown).
  async refreshBudget() {
    if (!this.session.budget) return null;
    try {
      this.set(await accounts.getSession(), false);
    } catch {
      // Kept as it was: the next answer tries again.
    }
    return this.session.budget;
  }

  set(session, changed) {
    const before = this.account?.id ?? null;
    this.session = { account: session?.account ?? null, budget: session?.budget ?? null };
    const { account, budget } = this.session;
    this.dialog.setSession(this.session);
    ui.openAccount.textContent = account ? account.name || account.email : "Sign in";
    ui.openAccount.setAttribute("aria-label", account ? `Account: ${account.email}` : "Sign in or create an account");
    ui.openAdmin.hidden = !account?.admin;
    const left = accounts.describeBudget(budget);
    ui.budgetLeft.hidden = !left;
    ui.budgetLeft.textContent = left ? `Budget: ${left}` : "";
    // Told at the first load too: a session that ended elsewhere leaves copies to forget.
    if (changed || !this.told || before !== (account?.id ?? null)) this.changed(this.session, changed);
    this.told = true;
  }
}
