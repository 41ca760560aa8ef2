// The expiring changes in force: what each set, what it returns to, who and why, and a countdown to its end.
// The server ends a change on time by itself (its reads return the earlier values at the end, and the
// store records the return); at zero this panel asks for the policy again to show the values in force.

import { fmtTime, fmtValue } from "./format.js";
import { $, el } from "./util.js";

const panel = { changes: [], timer: null, refresh: () => {}, asked: new Set() };

// "1:02:03", "4:05", "0:09": time left, whole seconds, rounded up so that 0:00 means ended.
export function fmtLeft(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? `${h}:` : "") + `${mm}:${String(s).padStart(2, "0")}`;
}

function line(path, value, back) {
  return el("div", { class: "override-change" },
    el("span", { class: "path" }, path), " ",
    el("span", { class: "new" }, fmtValue(path, value)),
    el("span", { class: "muted" }, " → returns to "),
    el("span", { class: "old" }, back === null || back === undefined ? "unset" : fmtValue(path, back)));
}

function row(change) {
  const paths = Object.keys(change.values).sort();
  return el("tr", { "data-version": String(change.version) },
    el("td", { class: "what" }, ...paths.map((p) => line(p, change.values[p], change.replaced[p]))),
    el("td", { class: "who" }, el("div", {}, `v${change.version} by ${change.by}`),
      el("div", { class: "muted small" }, change.reason)),
    el("td", { class: "until nowrap" }, fmtTime(change.until)),
    el("td", { class: "left num nowrap", "data-until": change.until }, ""));
}

function tick() {
  const now = Date.now();
  for (const cell of document.querySelectorAll("#overrides td.left")) {
    const until = cell.getAttribute("data-until");
    const left = Date.parse(until) - now;
    cell.textContent = left > 0 ? fmtLeft(left) : "ended";
    cell.classList.toggle("soon", left > 0 && left <= 60000);
    cell.classList.toggle("ended", left <= 0);
    // Once per change: the server already reads the earlier values; fetch them to show them here.
    if (left <= 0 && !panel.asked.has(until)) { panel.asked.add(until); setTimeout(panel.refresh, 250); }
  }
}

// Show the expiring changes of `policy` (its "overrides" section; none when it has no such section).
export function renderOverrides(policy) {
  panel.changes = (policy && policy.overrides) || [];
  $("overrides-panel").hidden = panel.changes.length === 0;
  const head = el("tr", {}, el("th", { class: "field" }, "what"), el("th", {}, "by, why"),
    el("th", {}, "until"), el("th", {}, "left"));
  const rows = [...panel.changes].sort((a, b) => Date.parse(a.until) - Date.parse(b.until)).map(row);
  $("overrides").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  tick();
}

// `refresh` fetches the policy again (called when a countdown reaches zero).
export function setupOverrides({ refresh }) {
  panel.refresh = refresh;
  clearInterval(panel.timer);
  panel.timer = setInterval(tick, 1000);
}
