// The only way the dashboard talks to the gateway: the admin API (/admin/v1) and the session API
// (/ui/api). The session cookie rides along by itself; every call that changes something also
// carries the session's CSRF token in the x-csrf-token header.

export const ADMIN = "/admin/v1";
let csrfToken = "";

export function setCsrfToken(token) {
  csrfToken = token || "";
}

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["x-csrf-token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "The gateway did not answer (" + err.message + ").", "network_error");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && path.startsWith(ADMIN)) window.dispatchEvent(new Event("gateway:signed-out"));
    throw new ApiError(response.status, error.message || `${response.status} ${response.statusText}`, error.code);
  }
  return data;
}

export const admin = {
  get: (path) => request("GET", ADMIN + path),
  post: (path, body) => request("POST", ADMIN + path, body === undefined ? {} : body),
  put: (path, body) => request("PUT", ADMIN + path, body),
  del: (path) => request("DELETE", ADMIN + path),
};

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

export function explain(err) {
  if (err instanceof ApiError && err.status === 404 && /^No such endpoint/.test(err.message)) {
    return "This gateway does not offer that admin endpoint yet (" + err.message + ")";
  }
  return err.message || String(err);
}
