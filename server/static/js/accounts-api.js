// The account routes (SPEC "Accounts"): sign-up, sign-in and out, the account, its personal
// tokens, a password reset's second half, and the admin's routes.

import { call } from "./api.js";

export const getSession = () => call("GET", "/api/session");
export const signIn = (email, password) => call("POST", "/api/session", { email, password });
export const signOut = () => call("DELETE", "/api/session");
export const signUp = (form) => call("POST", "/api/accounts", form);
export const changePassword = (password, newPassword) =>
  call("PUT", "/api/account", { password, new_password: newPassword });
export const deleteAccount = (password) => call("DELETE", "/api/account", { password });
export const resetPassword = (token, password) => call("POST", "/api/account/reset", { token, password });

export const listTokens = async () => (await call("GET", "/api/tokens")).data;
export const makeToken = (name) => call("POST", "/api/tokens", { name });
export const revokeToken = (id) => call("DELETE", `/api/tokens/${encodeURIComponent(id)}`);

export const listAccounts = async () => (await call("GET", "/api/admin/accounts")).data;
export const changeAccount = (id, changes) => call("PATCH", `/api/admin/accounts/${encodeURIComponent(id)}`, changes);
export const makeInvite = (email) => call("POST", "/api/admin/invites", email ? { email } : {});
export const listSpend = async () => (await call("GET", "/api/admin/spend")).data;
export const makeReset = (id) => call("POST", `/api/admin/accounts/${encodeURIComponent(id)}/reset`);

const PERIOD_WORDS = { day: "today", week: "this week", month: "this month" };

// "$3.20 of $10.00 left this month (resets 1 Jan)": a metered account's budget, or "".
export function describeBudget(budget) {
  if (!budget || typeof budget.limit_usd !== "number") return "";
  const used = (budget.spent_usd ?? 0) + (budget.reserved_usd ?? 0);
  const left = Math.max(0, budget.limit_usd - used);
  const words = [`$${left.toFixed(2)} of $${budget.limit_usd.toFixed(2)} left`];
  if (PERIOD_WORDS[budget.period]) words.push(PERIOD_WORDS[budget.period]);
  if (budget.resets_at) {
    const day = new Date(budget.resets_at).toLocaleDateString("en", { day: "numeric", month: "short" });
    words.push(`(resets ${day})`);
  }
  return words.join(" ");
}

// Whether an answer that stopped at its length limit was cut by the budget: the server caps a
// metered chat's max_tokens at what is left, so what is left now would not pay for it again.
export function cutByBudget(budget, cost) {
  if (!budget || typeof budget.limit_usd !== "number") return false;
  const left = budget.limit_usd - (budget.spent_usd ?? 0) - (budget.reserved_usd ?? 0);
  return left < 0.01 || (cost !== null && left < cost);
}
