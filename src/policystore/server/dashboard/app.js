// policystore dashboard: reads the policy over /v1, follows WS /v1/stream, writes with the user's token.
// Every write is previewed by the server first ("dry_run": true), so the page never re-derives the rules.

import { confirmWrite } from "./dialog.js";
import { fleetReport, loadFleet, startFleet, stopFleet } from "./fleet.js";
import { FIELDS, RISK_ORDER_NOTE, STRATEGY_FIELDS, fmt, fmtTime, riskOrder } from "./format.js";
import { historyChanged, loadHistory, setupHistory } from "./history.js";
import { loadProposals, setupProposals } from "./proposals.js";
import { renderTrading, setupTrading, tradingBanner } from "./trading.js";
import { renderOverrides, setupOverrides } from "./overrides.js";
import { $, api, el, session, toast } from "./util.js";

const state = { policy: null, effective: {}, role: null, name: null, ws: null, retry: 0, streamUp: false,
  health: null, locks: {}, locksVersion: null };
const RANK = { viewer: 0, operator: 1, admin: 2 };
// Seconds the kill switch waits for every live process to apply it before it reports who has not. Under the
// 5 s after which a silent process counts as lost, so a process frozen just before is named, not passed over.
const KILL_WAIT = 3;
const can = (role) => (RANK[state.role] ?? -1) >= RANK[role];

function banners() {
  const list = [];
  if (state.health && !state.health.store_reachable) {
    list.push(["error", "Policy store unreachable — values shown may be stale; writes will fail."]);
  } else if (state.health && state.health.stale) {
    list.push(["warn", `Answers are stale (source: ${state.health.source}).`]);
  }
  if (session.token && !state.streamUp) list.push(["warn", "Live stream disconnected — reconnecting…"]);
  if (state.policy && state.policy.emergency.active) {
    list.push(["kill", `KILL SWITCH ACTIVE — no new trades. ${state.policy.emergency.reason || ""}`]);
  }
  const trading = tradingBanner(state.policy);
  if (trading) list.push(trading);
  $("banners").replaceChildren(...list.map(([kind, text]) => el("div", { class: `banner ${kind}` }, text)));
  // The stream being up is not enough to say "live": answers from an unreachable store are stale.
  const storeDown = Boolean(state.health && (!state.health.store_reachable || state.health.stale));
  $("live-dot").className = "dot " + (state.streamUp && !storeDown ? "up" : "down");
  $("live-text").textContent = !state.streamUp ? "offline" : storeDown ? "stale" : "live";
}

// What the header says answers come from, in the words /healthz and /v1/values use.
function sourceText(source, stale, reachable) {
  if (stale) return `${source} (stale)`;
  return reachable === false ? `${source} (store unreachable)` : source;
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
  renderStrategies(p);
  renderTrading(p, state.effective, { can, write });
  renderOverrides(p);
  banners();
  refreshLocks(p);
}

function modeButton(p, name) {
  const lock = state.locks[name];
  const active = name === p.active_mode;
  const locked = !active && can("operator") && lock && !lock.allowed;
  const m = p.modes[name];
  let title = `max_leverage ${fmt(m.max_leverage, "lev")}, risk per trade ${fmt(m.max_risk_pct_per_trade, "pct")}`;
  const needs = lock && lock.proposal_required ? `${lock.approvals_required} admins` : "admin only";
  if (!can("operator")) title = "Viewers cannot change the policy.";
  else if (locked) {
    const who = lock.proposal_required ? `${lock.approvals_required} admins must agree (propose it)`
      : `only an ${lock.required_role} may`;
    title = `Switching to ${name} raises risk (${lock.raises_risk.slice(0, 3).join(", ")}`
      + `${lock.raises_risk.length > 3 ? ", …" : ""}); ${who}. Click to see what it changes.`;
  }
  return el("button", {
    class: ["mode", active ? "active" : "", locked ? "locked" : ""].filter(Boolean).join(" "), "data-mode": name,
    "data-allowed": lock ? String(lock.allowed) : null, title, disabled: active || !can("operator"),
    // Still clickable: its dialog shows what the switch would change and who may make it.
    onclick: () => switchMode(name),
  }, name, locked ? el("span", { class: "lock" }, lock.proposal_required ? needs : `${lock.required_role} only`) : "");
}

function renderModes(p) {
  $("mode-buttons").replaceChildren(...riskOrder(p.modes).map((name) => modeButton(p, name)));
}

// Which modes this role may switch to, as the server's preview says; asked again at every version.
async function refreshLocks(p) {
  if (!can("operator") || state.locksVersion === p.version) return;
  state.locksVersion = p.version;
  const locks = {};
  await Promise.all(riskOrder(p.modes).filter((name) => name !== p.active_mode).map(async (name) => {
    try {
      locks[name] = await api("POST", "/v1/mode", { mode: name, dry_run: true, decisions: false });
    } catch { /* left unknown */ }
  }));
  if (state.policy && state.policy.version === p.version) { state.locks = locks; renderModes(state.policy); }
}

function renderLimits(p) {
  const modes = riskOrder(p.modes);
  const head = el("tr", {}, el("th", { class: "field" }, "field"),
    ...modes.map((m) => el("th", { class: m === p.active_mode ? "active" : "", title: RISK_ORDER_NOTE }, m)),
    el("th", { class: "cap" }, "hard cap"));
  const rows = FIELDS.map(([field, kind, what]) => {
    const cap = p.hard_limits[field];
    const cells = modes.map((m) => {
      const value = p.modes[m][field];
      const cls = [m === p.active_mode ? "active" : "", kind === "flag" ? (value ? "on" : "off") : "num"];
      return el("td", { class: cls.join(" "), "data-mode": m, "data-field": field }, fmt(value, kind));
    });
    const label = el("th", { class: "field", title: what }, field,
      kind === "money" ? el("div", { class: "unit" }, "notional, account currency") : "",
      kind === "floor" ? el("div", { class: "unit" }, "a floor: at least this") : "");
    return el("tr", {}, label, ...cells,
      el("td", { class: "cap num", "data-field": field }, cap === undefined ? "" : fmt(cap, kind)));
  });
  $("limits").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function renderStrategies(p) {
  const effective = (state.effective && state.effective.strategies) || {};
  const head = el("tr", {}, el("th", { class: "field" }, "strategy"),
    ...STRATEGY_FIELDS.map(([field]) => el("th", {}, field)));
  const rows = Object.keys(p.strategies).sort().map((name) => {
    const stored = p.strategies[name];
    const derived = effective[name] || {};
    const cells = STRATEGY_FIELDS.map(([field, kind]) => {
      const own = stored[field];
      const value = derived[field] ?? own;
      let note = "from mode", cls = "derived";
      if (field === "cooldown_seconds") { note = "own"; cls = "own"; }
      else if (own !== null && own !== undefined && own !== value) {
        note = `override ${fmt(own, kind)} is looser; the mode's applies`; cls = "clamped";
      } else if (own !== null && own !== undefined) { note = "override"; cls = "override"; }
      return el("td", { class: `num ${cls}`, "data-strategy": name, "data-field": field },
        el("span", { class: "value" }, fmt(value, kind)), el("div", { class: "note" }, note));
    });
    return el("tr", { "data-strategy": name }, el("th", { class: "field" }, name), ...cells);
  });
  $("strategies").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function installed(result) {
  if (result && result.policy) { state.policy = result.policy; state.effective = result.effective || {}; render(); }
  historyChanged();
  refreshProposals();
}

function refreshProposals() {
  if (state.policy) loadProposals(state.policy.version);
}

function refused(title, err) {
  if (err.error === "StoreUnavailableError") {
    pollHealth(); // the header and banners say so now, not at the next poll
    const v = state.policy ? state.policy.version : "?";
    const what = title === "Activate kill switch"
      ? "Kill switch NOT turned on: the policy store cannot be reached, so nothing was written. "
        + `Until it is back, each trading process keeps to the last policy it holds (here version ${v}, kill switch off)`
        + " and one that holds none opens no new trade; to stop trading now, stop the traders themselves."
      : `${title} not done: the policy store cannot be reached, so nothing was written.`;
    toast(what, "error", { ms: 30000, title: err.message });
    return;
  }
  toast(`${title} refused: ${err.message}`, "error");
}

// A write with "wait" answers once the fleet has applied it (or 202 naming who has not): say which.
function confirmed(title, result) {
  const [report, complete] = fleetReport(result.fleet);
  const text = `${title}: done (version ${result.version})` + (report ? `; ${report}.` : ".");
  if (result.fleet) {
    $("kill-fleet").textContent = `v${result.version} ${report}`;
    $("kill-fleet").className = "small fleet-ack " + (complete ? "ok" : "refused");
    $("kill-fleet").hidden = false;
    loadFleet();
  }
  toast(text, complete ? "ok" : "error", { ms: complete ? 6000 : 60000 });
}

// One write through the confirm dialog. "changes", when given, is the same write as path -> value changes:
// a write that needs more than one admin is proposed with them instead. "wait" waits for the fleet.
function write(title, text, path, method, body, { changes = null, wait = null } = {}) {
  confirmWrite({
    title, text, role: state.role,
    preview: () => api(method, path, { ...body, dry_run: true }),
    commit: (reason, base) => {
      if (wait !== null) toast(`${title}: written; waiting up to ${wait} s for every process to apply it…`, "info");
      return api(method, path, { ...body, reason, expected_version: base, ...(wait !== null ? { wait } : {}) });
    },
    propose: changes && can("operator") ? (reason) => api("POST", "/v1/proposals", { changes, reason }) : null,
    done: (result) => { installed(result); confirmed(title, result); },
    proposed: (result) => {
      refreshProposals();
      toast(result.status === "applied" ? `${title}: applied as version ${result.applied_version}.`
        : `${title}: proposed as ${result.id}; ${result.approvals_missing} more admin(s) must approve it.`, "ok");
    },
    failed: (err) => refused(title, err),
  });
}

function switchMode(name) {
  write(`Switch to ${name}`, `Make ${name} the active risk mode.`, "/v1/mode", "POST", { mode: name },
    { changes: { active_mode: name } });
}

function rollback(version) {
  write(`Roll back to v${version}`, `Write a new version equal in content to version ${version}.`,
    "/v1/rollback", "POST", { version });
}

async function refreshPolicy() {
  const data = await api("GET", "/v1/policy");
  if (!state.policy || data.version >= state.policy.version) {
    state.policy = data.policy; state.effective = data.effective || {}; render();
  }
  $("source").textContent = sourceText(data.source, data.stale);
}

async function pollHealth() {
  try {
    state.health = await (await fetch("/healthz")).json();
    $("source").textContent = sourceText(state.health.source, state.health.stale, state.health.store_reachable);
  } catch { state.health = { store_reachable: false, stale: true, source: "server unreachable" }; }
  banners();
}

function connectStream() {
  if (!session.token) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ token: session.token }));
  ws.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "snapshot") {
      state.streamUp = true; state.retry = 0; state.role = data.role; state.name = data.viewer;
      state.policy = data.policy; state.effective = data.effective || {};
      $("who").textContent = `${data.viewer} · ${data.role}`; $("who").hidden = false;
      render(); loadHistory(true); refreshProposals();
    } else if (data.type === "policy.updated") {
      // One message per change: policy.updated carries every kind (mode, kill switch, limits).
      if (!state.policy || data.version > state.policy.version) {
        refreshPolicy().then(() => { historyChanged(); refreshProposals(); });
      }
      loadFleet();
    } else if (data.type === "error") {
      signOut(data.detail);
    }
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.streamUp = false; banners();
    if (event.code === 1008 || !session.token) return;
    const delay = Math.min(10000, 500 * 2 ** state.retry++);
    setTimeout(connectStream, delay);
  };
}

function signOut(message) {
  sessionStorage.removeItem("policystore.token");
  session.token = null; state.policy = null; state.role = null; state.streamUp = false;
  state.locks = {}; state.locksVersion = null;
  stopFleet();
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  $("app").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("who").hidden = true;
  $("login-error").hidden = !message; $("login-error").textContent = message || "";
  banners();
}

async function signIn(token) {
  session.token = token;
  try {
    await refreshPolicy();
  } catch (err) {
    if (session.token) { $("login-error").textContent = err.message; $("login-error").hidden = false; }
    return;
  }
  sessionStorage.setItem("policystore.token", token);
  $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
  connectStream();
  startFleet();
}

function start() {
  session.onUnauthorized = signOut;
  setupHistory({ canRollback: () => can("admin"), rollback, current: () => (state.policy ? state.policy.version : 0) });
  setupProposals({
    role: () => state.role, name: () => state.name,
    approvals: () => (state.policy && state.policy.change_control ? state.policy.change_control.approvals_required : 1),
    applied: () => refreshPolicy().then(historyChanged),
  });
  setupOverrides({ refresh: () => refreshPolicy().then(historyChanged).catch(() => {}) });
  $("modes-order").title = RISK_ORDER_NOTE;
  setupTrading({ can, write });
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault(); signIn($("token").value.trim());
  });
  $("logout").addEventListener("click", () => signOut(""));
  $("kill-toggle").addEventListener("click", () => {
    const on = !state.policy.emergency.active;
    write(on ? "Activate kill switch" : "Deactivate kill switch",
      (on ? "Stop all new trades now." : "Allow new trades again (admins only).")
        + ` Then wait up to ${KILL_WAIT} s for every trading process to confirm it.`,
      "/v1/emergency", "POST", { active: on },
      { changes: on ? null : { "emergency.active": false, "emergency.reason": null }, wait: KILL_WAIT });
  });
  pollHealth(); setInterval(pollHealth, 5000);
  // Proposals made through another server or the command line announce nothing here: look every few seconds.
  setInterval(() => { if (session.token && state.policy) refreshProposals(); }, 5000);
  const saved = sessionStorage.getItem("policystore.token");
  if (saved) signIn(saved); else $("login").hidden = false;
}

// Module scripts run after the document is parsed.
start();
