// policystore dashboard: reads the policy over /v1, follows WS /v1/stream, writes with the user's token.
"use strict";

const FIELDS = [
  ["max_leverage", "lev"], ["max_risk_pct_per_trade", "pct"], ["max_daily_drawdown", "pct"],
  ["max_positions", "int"], ["global_min_confidence", "pct"], ["scaling_factor", "mult"],
  ["position_size_cap", "money"], ["enable_rl", "flag"], ["enable_meta_strategy", "flag"],
  ["enable_pal", "flag"], ["enable_pba", "flag"], ["enable_clm", "flag"], ["enable_retraining", "flag"],
  ["enable_dynamic_tpsl", "flag"],
];
const PCT_PATH = /(max_risk_pct_per_trade|max_daily_drawdown|global_min_confidence)$/;
const state = { token: sessionStorage.getItem("policystore.token"), policy: null, role: null, name: null,
  ws: null, retry: 0, streamUp: false, health: null, history: [] };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function fmt(value, kind) {
  if (value === null || value === undefined) return "–";
  switch (kind) {
    case "pct": return (value * 100).toFixed(value * 100 < 1 ? 2 : 1).replace(/\.0$/, "") + " %";
    case "lev": return Number(value).toFixed(1) + "×";
    case "mult": return "×" + Number(value).toFixed(2);
    case "money": return Number(value).toLocaleString("en-US");
    case "flag": return value ? "on" : "off";
    default: return String(value);
  }
}

function fmtChange(path, value) {
  if (typeof value === "number" && PCT_PATH.test(path)) return fmt(value, "pct");
  if (typeof value === "boolean") return value ? "on" : "off";
  if (value === null) return "–";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) { signOut(data.detail || "The token was refused."); throw new Error(data.detail); }
  if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
  return data;
}

function toast(text, kind = "info") {
  const t = $("toast");
  t.textContent = text; t.className = `toast ${kind}`; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function banners() {
  const list = [];
  if (state.health && !state.health.store_reachable) {
    list.push(["error", "Policy store unreachable — values shown may be stale; writes will fail."]);
  } else if (state.health && state.health.stale) {
    list.push(["warn", `Answers are stale (source: ${state.health.source}).`]);
  }
  if (state.token && !state.streamUp) list.push(["warn", "Live stream disconnected — reconnecting…"]);
  if (state.policy && state.policy.emergency.active) {
    list.push(["kill", `KILL SWITCH ACTIVE — no new trades. ${state.policy.emergency.reason || ""}`]);
  }
  $("banners").replaceChildren(...list.map(([kind, text]) => el("div", { class: `banner ${kind}` }, text)));
  $("live-dot").className = "dot " + (state.streamUp ? "up" : "down");
  $("live-text").textContent = state.streamUp ? "live" : "offline";
}

function can(role) {
  const rank = { viewer: 0, operator: 1, admin: 2 };
  return (rank[state.role] ?? -1) >= rank[role];
}

function render() {
  const p = state.policy;
  if (!p) return;
  $("version").textContent = p.version;
  $("active-mode").textContent = p.active_mode;
  $("policy-meta").textContent = `v${p.version} · ${fmtTime(p.updated_at)} · by ${p.updated_by} · ${p.reason}`;
  const em = p.emergency;
  $("kill-badge").textContent = em.active ? "ACTIVE" : "OFF";
  $("kill-badge").className = "badge " + (em.active ? "kill-on" : "kill-off");
  $("kill-detail").textContent = em.active
    ? `since ${fmtTime(em.activated_at)} by ${em.activated_by}: ${em.reason}` : "New trades allowed.";
  const toggle = $("kill-toggle");
  toggle.textContent = em.active ? "Deactivate kill switch" : "Activate kill switch";
  toggle.className = em.active ? "" : "danger";
  toggle.disabled = em.active ? !can("admin") : !can("operator");
  toggle.title = toggle.disabled ? (em.active ? "Admins only" : "Operators and admins") : "";
  renderModes(p);
  renderLimits(p);
  banners();
}

function renderModes(p) {
  const buttons = Object.keys(p.modes).map((name) => el("button", {
    class: name === p.active_mode ? "mode active" : "mode", "data-mode": name,
    disabled: name === p.active_mode || !can("operator") ? "" : null,
    onclick: () => confirmAction(`Switch to ${name}`, `Make ${name} the active risk mode.`,
      (reason) => api("POST", "/v1/mode", { mode: name, reason, expected_version: p.version })),
  }, name));
  $("mode-buttons").replaceChildren(...buttons);
}

function renderLimits(p) {
  const modes = Object.keys(p.modes);
  const head = el("tr", {}, el("th", { class: "field" }, "field"),
    ...modes.map((m) => el("th", { class: m === p.active_mode ? "active" : "" }, m)),
    el("th", { class: "cap" }, "hard cap"));
  const rows = FIELDS.map(([field, kind]) => {
    const cap = p.hard_limits[field];
    const cells = modes.map((m) => {
      const value = p.modes[m][field];
      const cls = [m === p.active_mode ? "active" : "", kind === "flag" ? (value ? "on" : "off") : "num"];
      return el("td", { class: cls.join(" "), "data-mode": m, "data-field": field }, fmt(value, kind));
    });
    return el("tr", {}, el("th", { class: "field" }, field), ...cells,
      el("td", { class: "cap num" }, cap === undefined ? "" : fmt(cap, kind)));
  });
  $("limits").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function renderHistory() {
  const current = state.policy ? state.policy.version : 0;
  const head = el("tr", {}, ...["v", "at (UTC)", "by", "reason", "changes", ""].map((h) => el("th", {}, h)));
  const rows = state.history.map((e) => {
    const changes = e.changes.length ? e.changes.map((c) => el("div", { class: "change" },
      el("span", { class: "path" }, c.path), " ", el("span", { class: "old" }, fmtChange(c.path, c.old)),
      " → ", el("span", { class: "new" }, fmtChange(c.path, c.new)))) : [el("span", { class: "muted" }, "—")];
    const action = can("admin") && e.version !== current ? el("button", { class: "small-btn",
      onclick: () => confirmAction(`Roll back to v${e.version}`,
        `Write a new version equal in content to version ${e.version}.`,
        (reason) => api("POST", "/v1/rollback", { version: e.version, reason })) }, "Roll back") : "";
    return el("tr", {}, el("td", { class: "num" }, e.version), el("td", { class: "mono nowrap" }, fmtTime(e.at)),
      el("td", {}, e.by), el("td", {}, e.reason), el("td", {}, ...changes), el("td", {}, action));
  });
  $("history").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function confirmAction(title, text, action) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-reason").value = "";
  dialog.onclose = null;
  $("confirm-form").onsubmit = async (event) => {
    event.preventDefault();
    const reason = $("confirm-reason").value.trim();
    if (!reason) return;
    dialog.close();
    try {
      const result = await action(reason);
      state.policy = result.policy; render(); refreshHistory();
      toast(`${title}: done (version ${result.version}).`, "ok");
    } catch (err) { toast(`${title} refused: ${err.message}`, "error"); }
  };
  $("confirm-cancel").onclick = () => dialog.close();
  dialog.showModal();
  $("confirm-reason").focus();
}

async function refreshPolicy() {
  const data = await api("GET", "/v1/policy");
  if (!state.policy || data.version >= state.policy.version) { state.policy = data.policy; render(); }
  $("source").textContent = data.source + (data.stale ? " (stale)" : "");
}

async function refreshHistory() {
  state.history = (await api("GET", "/v1/history?limit=25")).entries;
  renderHistory();
}

async function pollHealth() {
  try {
    state.health = await (await fetch("/healthz")).json();
    $("source").textContent = state.health.source + (state.health.stale ? " (stale)" : "");
  } catch { state.health = { store_reachable: false, stale: true, source: "server unreachable" }; }
  banners();
}

function connectStream() {
  if (!state.token) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ token: state.token }));
  ws.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "snapshot") {
      state.streamUp = true; state.retry = 0; state.role = data.role; state.name = data.viewer;
      state.policy = data.policy;
      $("who").textContent = `${data.viewer} · ${data.role}`; $("who").hidden = false;
      render(); refreshHistory();
    } else if (data.type === "policy.updated") {
      if (!state.policy || data.version > state.policy.version) refreshPolicy().then(refreshHistory);
    } else if (data.type === "error") {
      signOut(data.detail);
    }
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.streamUp = false; banners();
    if (event.code === 1008 || !state.token) return;
    const delay = Math.min(10000, 500 * 2 ** state.retry++);
    setTimeout(connectStream, delay);
  };
}

function signOut(message) {
  sessionStorage.removeItem("policystore.token");
  state.token = null; state.policy = null; state.role = null; state.streamUp = false;
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  $("app").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("who").hidden = true;
  $("login-error").hidden = !message; $("login-error").textContent = message || "";
  banners();
}

async function signIn(token) {
  state.token = token;
  try {
    await refreshPolicy();
  } catch (err) {
    if (state.token) { $("login-error").textContent = err.message; $("login-error").hidden = false; }
    return;
  }
  sessionStorage.setItem("policystore.token", token);
  $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
  connectStream();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault(); signIn($("token").value.trim());
  });
  $("logout").addEventListener("click", () => signOut(""));
  $("kill-toggle").addEventListener("click", () => {
    const on = !state.policy.emergency.active;
    confirmAction(on ? "Activate kill switch" : "Deactivate kill switch",
      on ? "Stop all new trades now." : "Allow new trades again (admins only).",
      (reason) => api("POST", "/v1/emergency", { active: on, reason }));
  });
  pollHealth(); setInterval(pollHealth, 5000);
  if (state.token) signIn(state.token); else $("login").hidden = false;
});
