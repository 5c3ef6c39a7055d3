// The account dialog. Signed out: sign in, create an account (an invite link fills its
// invite), or set a new password from a reset link. Signed in: who, the budget left, sign out,
// personal tokens (made and shown once with a Copy button, listed, revoked), the password
// changed, the account deleted.

import * as accounts from "./accounts-api.js";
import { closeButtons, copyFrom, field, onSubmit, when } from "./forms.js";

const byId = (id) => document.getElementById(id);

export class AccountDialog {
  // changed(session): signed in, out, or the account is gone; `session` is GET /api/session's.
  constructor(dialog, changed) {
    this.dialog = dialog;
    this.changed = changed;
    this.invite = null;
    this.resetToken = null;
    this.session = { account: null, budget: null };
    this.views = [...dialog.querySelectorAll("[data-view]")];
    closeButtons(dialog);
    for (const link of dialog.querySelectorAll("[data-show]")) {
      link.addEventListener("click", () => this.show(link.dataset.show));
    }
    this.setupSignedOut();
    this.setupSignedIn();
  }

  setupSignedOut() {
    const signIn = byId("sign-in-form");
    onSubmit(signIn, async () => {
      await accounts.signIn(field(signIn, "email").value, field(signIn, "password").value);
      signIn.reset();
      await this.signedIn();
    });
    const signUp = byId("sign-up-form");
    onSubmit(signUp, async () => {
      const form = { email: field(signUp, "email").value, password: field(signUp, "password").value };
      const name = field(signUp, "name").value.trim();
      if (name) form.name = name;
      if (this.invite) form.invite = this.invite;
      await accounts.signUp(form);
      signUp.reset();
      this.invite = null;
      dropQuery("invite");
      await this.signedIn();
    });
    const reset = byId("reset-form");
    onSubmit(reset, async () => {
      await accounts.resetPassword(this.resetToken, field(reset, "password").value);
      reset.reset();
      this.resetToken = null;
      dropQuery("reset");
      this.show("sign-in");
      byId("sign-in-form").querySelector(".done-text").textContent = "Password set: sign in with it.";
    });
  }

  setupSignedIn() {
    byId("sign-out").addEventListener("click", async () => {
      await accounts.signOut().catch(() => null);
      this.dialog.close();
      this.changed({ account: null, budget: null });
    });
    const tokenForm = byId("token-form");
    onSubmit(tokenForm, async () => {
      const made = await accounts.makeToken(field(tokenForm, "name").value.trim());
      tokenForm.reset();
      byId("token-value").value = made.token;
      byId("token-made").hidden = false;
      byId("token-copy").focus();
      await this.renderTokens();
    });
    byId("token-copy").addEventListener("click", () => copyFrom(byId("token-value"), byId("token-copy")));
    byId("token-list").addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-token]");
      if (!button || !window.confirm(`Revoke the token “${button.dataset.name}”? It stops working at once.`)) return;
      try {
        await accounts.revokeToken(button.dataset.token);
        await this.renderTokens();
        byId("token-form").elements.namedItem("name").focus();
      } catch (error) {
        byId("token-error").textContent = error.message;
      }
    });
    const password = byId("password-form");
    onSubmit(password, async () => {
      await accounts.changePassword(field(password, "password").value, field(password, "new_password").value);
      password.reset();
      password.querySelector(".done-text").textContent = "Password changed: other devices are signed out.";
    });
    const remove = byId("delete-form");
    onSubmit(remove, async () => {
      if (!window.confirm("Delete this account, its conversations and tokens, for good?")) return;
      await accounts.deleteAccount(field(remove, "password").value);
      remove.reset();
      this.dialog.close();
      this.changed({ account: null, budget: null });
    });
  }

  async signedIn() {
    const session = await accounts.getSession();
    this.changed(session);
    this.setSession(session);
    this.show("account");
  }

  setSession(session) {
    this.session = session;
    const { account, budget } = session;
    if (!account) return;
    const who = account.name ? `${account.name} (${account.email})` : account.email;
    byId("account-who").textContent = `Signed in as ${who}${account.admin ? ", an admin" : ""}.`;
    const left = accounts.describeBudget(budget);
    byId("account-budget").hidden = !left;
    byId("account-budget").textContent = left ? `Budget: ${left}.` : "";
  }

  // Opens on what fits: the account when signed in, else sign-in (or `view`).
  open(view) {
    const signedIn = Boolean(this.session.account);
    this.show(signedIn ? "account" : (view ?? "sign-in"));
    if (!this.dialog.open) this.dialog.showModal();
    this.focusFirst();
  }

  openInvite(token) {
    this.invite = token;
    this.dialog.querySelector(".invite-note").hidden = false;
    this.open("sign-up");
  }

  openReset(token) {
    this.resetToken = token;
    this.open("reset");
  }

  show(view) {
    for (const node of this.views) node.hidden = node.dataset.view !== view;
    const titles = { "sign-in": "Sign in", "sign-up": "Create an account", reset: "New password", account: "Account" };
    byId("account-dialog-title").textContent = titles[view];
    if (view === "account") {
      byId("token-made").hidden = true;
      byId("token-value").value = "";
      this.renderTokens();
    }
    if (this.dialog.open) this.focusFirst();
  }

  focusFirst() {
    const view = this.views.find((node) => !node.hidden);
    view?.querySelector("input:not([type=hidden]), button")?.focus();
  }

  async renderTokens() {
    const list = byId("token-list");
    byId("token-error").textContent = "";
    let tokens;
    try {
      tokens = await accounts.listTokens();
    } catch (error) {
      byId("token-error").textContent = error.message;
      return;
    }
    list.replaceChildren(
      ...tokens.map((token) => {
        const item = document.createElement("li");
        const text = document.createElement("span");
        text.textContent = `${token.name} · made ${when(token.created_at)} · last used ${when(token.last_used_at)}`;
        const revoke = document.createElement("button");
        revoke.type = "button";
        revoke.className = "button small";
        revoke.textContent = "Revoke";
        revoke.dataset.token = token.id;
        revoke.dataset.name = token.name;
        revoke.setAttribute("aria-label", `Revoke “${token.name}”`);
        item.append(text, revoke);
        return item;
      }),
    );
  }
}

// The link's one-time token leaves the address bar once used (a reload must not reuse it).
function dropQuery(name) {
  const url = new URL(window.location.href);
  url.searchParams.delete(name);
  history.replaceState(null, "", url);
}
