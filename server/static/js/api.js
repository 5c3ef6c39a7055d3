// The server's small JSON routes: profile (the saved key), models list and login.

const ACCESS_REQUIRED = "Access token required";
const SIGN_IN_REQUIRED = "Sign in required";
export const KEY_MISSING = "OpenRouter API Key not found. Please set it in your profile settings.";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ACCOUNTS=required and nobody signed in: only the account routes answer.
export function isSignInRequired(error) {
  return error instanceof ApiError && error.status === 401 && error.message === SIGN_IN_REQUIRED;
}

export function isAccessRequired(error) {
  return error instanceof ApiError && error.status === 401 && error.message === ACCESS_REQUIRED;
}

export async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, data?.message ?? `${response.status} ${response.statusText}`);
  }
  return data;
}

export const getProfile = () => call("GET", "/api/profile");
export const saveKey = (key) => call("PUT", "/api/profile", { openrouter_api_key: key });
export const clearKey = () => call("DELETE", "/api/profile");
export const login = (token) => call("POST", "/api/login", { token });

export async function listModels() {
  return (await call("GET", "/api/models")).data;
}
