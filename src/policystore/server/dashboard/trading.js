// The trading panel: states per scope (firm, strategies, instruments) with what decides each, the instrument
// limits table, the firm-wide controls, and a state selector per scope that opens the previewed confirm dialog.
// What is in force comes from the server ("effective"), so the page never re-derives the rules.

import { INSTRUMENT_FIELDS, TRADING_FIELDS, fmt } from "./format.js";
import { $, el } from "./util.js";

export const STATES = ["active", "reducing", "halted"];
const WHAT = {
  active: "orders allowed within the limits",
  reducing: "only orders that reduce an open position",
  halted: "no order at all",
};

// The firm-wide state as a banner beside the kill switch's, while it is set to anything but active.
export function tradingBanner(policy) {
  const state = policy && policy.trading ? policy.trading.state : "active";
  if (state === "active") return null;
  return [`trading ${state}`, `TRADING ${state.toUpperCase()} firm-wide — ${WHAT[state]}.`];
}

function badge(state) {
  return el("span", { class: `state-badge ${state || "unset"}` }, state || "not set");
}

function decided(verdict) {
  if (!verdict) return "";
  return el("span", { class: "in-force" }, badge(verdict.state),
    el("span", { class: "by muted small", title: `decided by ${verdict.set_by}` }, ` ${verdict.scope} · ${verdict.set_by}`));
}

// One state selector: its value is the scope's own state; choosing another opens the confirm dialog.
function selector(scope, name, own, ctx) {
  const label = scope === "firm" ? "the firm-wide trading state" : `${scope} ${name}`;
  const select = el("select", {
    class: "state-select", "data-scope": scope, "data-name": name, "aria-label": `State of ${label}`,
    disabled: !ctx.can("operator"),
    title: ctx.can("operator") ? "Toward halted: operators. Toward active: admins." : "Viewers cannot change the policy.",
  }, own ? "" : el("option", { value: "" }, "not set"), ...STATES.map((s) => el("option", { value: s }, s)));
  select.value = own || "";
  select.addEventListener("change", () => {
    const target = select.value;
    select.value = own || ""; // the page shows what the store holds until a write says otherwise
    if (target) change(scope, name, target, ctx);
  });
  return select;
}

function change(scope, name, state, ctx) {
  const body = { state };
  if (scope === "strategy") body.strategy = name;
  if (scope === "instrument") body.symbol = name;
  const who = scope === "firm" ? "firm-wide trading" : name === "default" ? "default instrument state" : `${scope} ${name}`;
  const text = name === "default" && scope === "instrument"
    ? `Every instrument without a state of its own: ${state} (${WHAT[state]}).`
    : `Set ${who} to ${state}: ${WHAT[state]}.`;
  ctx.write(`Set ${who} to ${state}`, text, "/v1/trading", "POST", body);
}

function renderStates(p, view, ctx) {
  const head = el("tr", {}, ...["scope", "name", "own state", "in force · decided by", "change"].map((h) =>
    el("th", { class: h === "scope" || h === "name" ? "field" : "" }, h)));
  const firm = el("tr", { "data-scope": "firm" }, el("th", { class: "field" }, "firm"), el("td", { class: "name" }, "—"),
    el("td", {}, badge(p.trading.state)), el("td", {}, decided(view.effective_state)),
    el("td", {}, selector("firm", "firm", p.trading.state, ctx)));
  const strategies = Object.keys(p.strategies).sort().map((name) => el("tr", { "data-scope": "strategy", "data-name": name },
    el("th", { class: "field" }, "strategy"), el("td", { class: "name" }, name),
    el("td", {}, badge(p.strategies[name].state)), el("td", {}, decided(view.strategies[name])),
    el("td", {}, selector("strategy", name, p.strategies[name].state, ctx))));
  $("trading-states").replaceChildren(el("thead", {}, head), el("tbody", {}, firm, ...strategies));
}

function limitCell(key, field, kind, bound) {
  if (!bound) return el("td", { class: "num", "data-field": field }, "–");
  const source = bound.set_by.startsWith("hard_limits.") ? "hard cap"
    : key !== "default" && bound.set_by.startsWith("instruments.default.") ? "default" : "";
  return el("td", { class: `num ${source ? "inherited" : "own"}`, "data-field": field, title: `set by ${bound.set_by}` },
    el("span", { class: "value" }, fmt(bound.value, kind)), source ? el("div", { class: "note" }, source) : "");
}

function renderInstruments(p, instruments, ctx) {
  const units = { money: "account currency", pct: "% of the reference price", qty: "units of the instrument" };
  const head = el("tr", {}, el("th", { class: "field" }, "instrument"), el("th", {}, "own state"),
    el("th", {}, "in force · decided by"),
    ...INSTRUMENT_FIELDS.map(([field, kind, what]) => el("th", { class: "right", title: what }, field,
      el("div", { class: "unit" }, units[kind]))), el("th", {}, "change"));
  const rows = Object.entries(instruments).map(([key, view]) => {
    const own = (p.instruments[key] || {}).state || null;
    const name = key === "default" ? el("span", {}, "default", el("div", { class: "note" }, "every other instrument")) : key;
    return el("tr", { "data-instrument": key }, el("th", { class: "field" }, name), el("td", {}, badge(own)),
      el("td", {}, decided(view.in_force)),
      ...INSTRUMENT_FIELDS.map(([field, kind]) => limitCell(key, field, kind, view[field])),
      el("td", {}, selector("instrument", key, own, ctx)));
  });
  $("instruments").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function renderControls(p, view) {
  const rows = [el("tr", { "data-field": "allow_unlisted" }, el("th", { class: "field" }, "allow_unlisted"),
    el("td", {}, p.trading.allow_unlisted ? "yes: any instrument" : "no: only the instruments listed"))];
  for (const [field, kind, what] of TRADING_FIELDS) {
    const bound = view[field];
    const text = bound ? fmt(bound.value, kind) + (field === "max_orders_per_minute" ? " per executor" : "") : "none";
    const cap = bound && bound.set_by.startsWith("hard_limits.") ? " (hard cap)" : "";
    rows.push(el("tr", { "data-field": field }, el("th", { class: "field", title: what }, field),
      el("td", { class: "num" }, text + cap)));
  }
  $("firm-controls").replaceChildren(el("tbody", {}, ...rows));
}

export function renderTrading(p, effective, ctx) {
  const trading = (effective && effective.trading) || { effective_state: null, strategies: {} };
  renderStates(p, trading, ctx);
  renderInstruments(p, (effective && effective.instruments) || {}, ctx);
  renderControls(p, trading);
  $("instrument-form").hidden = !ctx.can("operator");
}

// The form that sets a state for an instrument the table does not list yet.
export function setupTrading(ctx) {
  $("instrument-state").replaceChildren(...STATES.map((s) => el("option", { value: s }, s)));
  $("instrument-state").value = "halted";
  $("instrument-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const symbol = $("instrument-symbol").value.trim();
    if (symbol) change("instrument", symbol, $("instrument-state").value, ctx);
  });
}
