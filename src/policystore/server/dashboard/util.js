// DOM helpers, the toast, and the one function that talks to /v1 with the signed-in token.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === "") continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function toast(text, kind = "info", { ms = 6000, title = "" } = {}) {
  const t = $("toast");
  t.textContent = text; t.title = title; t.className = `toast ${kind}`; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, ms);
}

// What a refused request carries: the error class and its one sentence, as the server sent them.
export class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || `HTTP ${status}`);
    this.status = status; this.error = body.error || "HTTPError"; this.body = body;
  }
}

export const session = { token: null, onUnauthorized: () => {} };

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) session.onUnauthorized(data.detail || "The token was refused.");
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
