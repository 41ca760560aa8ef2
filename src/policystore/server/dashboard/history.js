// The history panel: pages of 25 entries, kill-switch writes as one line, and a diff of any two versions.

import { fmtTime, fmtValue } from "./format.js";
import { $, api, el } from "./util.js";

export const PAGE = 25;
const view = { before: [], entries: [], picked: [] };
let hooks = { canRollback: () => false, rollback: () => {}, current: () => 0 };

export function setupHistory(given) {
  hooks = given;
  $("history-older").addEventListener("click", () => {
    const last = view.entries[view.entries.length - 1];
    if (last) { view.before.push(last.version); loadHistory(); }
  });
  $("history-newer").addEventListener("click", () => { view.before.pop(); loadHistory(); });
  $("diff-form").addEventListener("submit", (event) => { event.preventDefault(); showDiff(); });
}

// Reload the page shown; "reset" goes back to the newest entries.
export async function loadHistory(reset = false) {
  if (reset) view.before = [];
  const before = view.before[view.before.length - 1];
  const query = `limit=${PAGE}` + (before ? `&before=${before}` : "");
  view.entries = (await api("GET", `/v1/history?${query}`)).entries;
  renderHistory();
}

// A change that arrived: refresh the newest page, but do not move a reader off an older one.
export function historyChanged() {
  if (!view.before.length) loadHistory();
  else $("history-range").textContent += " · newer versions exist";
}

function killLine(entry) {
  const on = entry.changes.find((c) => c.path === "emergency.active");
  if (!on) return null;
  return el("div", { class: on.new ? "kill-line on" : "kill-line off" },
    `kill switch ${on.new ? "ON" : "OFF"} by ${entry.by}: ${entry.reason}`);
}

function changeLines(entry) {
  const line = killLine(entry);
  // The kill switch's own fields (state, reason, who and when) are all in that one line.
  const rest = entry.changes.filter((c) => !(line && c.path.startsWith("emergency.")));
  const lines = rest.map((c) => c.path === "active_mode"
    ? el("div", { class: "change mode-line" }, `mode ${c.old} → ${c.new}`)
    : el("div", { class: "change" }, el("span", { class: "path" }, c.path), " ",
      el("span", { class: "old" }, fmtValue(c.path, c.old)), " → ", el("span", { class: "new" }, fmtValue(c.path, c.new))));
  const all = line ? [line, ...lines] : lines;
  return all.length ? all : [el("span", { class: "muted" }, "—")];
}

function pick(version, checked) {
  view.picked = view.picked.filter((v) => v !== version);
  if (checked) view.picked.push(version);
  view.picked = view.picked.slice(-2);
  for (const box of document.querySelectorAll("#history input.pick")) {
    box.checked = view.picked.includes(Number(box.dataset.version));
  }
  if (view.picked.length === 2) {
    const [a, b] = [...view.picked].sort((x, y) => x - y);
    $("diff-v1").value = a; $("diff-v2").value = b;
    showDiff();
  }
}

function renderHistory() {
  const current = hooks.current();
  const head = el("tr", {}, ...["diff", "v", "at (UTC)", "by", "reason", "changes", ""].map((h) => el("th", {}, h)));
  const rows = view.entries.map((e) => {
    const action = hooks.canRollback() && e.version !== current ? el("button", { class: "small-btn rollback",
      "data-version": e.version, onclick: () => hooks.rollback(e.version) }, "Roll back") : "";
    const box = el("input", { type: "checkbox", class: "pick", "data-version": e.version,
      title: "Pick two versions to see what changed between them", checked: view.picked.includes(e.version),
      onchange: (event) => pick(e.version, event.target.checked) });
    return el("tr", { "data-version": e.version }, el("td", {}, box), el("td", { class: "num" }, e.version),
      el("td", { class: "mono nowrap" }, fmtTime(e.at)), el("td", {}, e.by), el("td", {}, e.reason),
      el("td", {}, changeLines(e)), el("td", {}, action));
  });
  $("history").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  const first = view.entries[0], last = view.entries[view.entries.length - 1];
  $("history-range").textContent = first ? `versions ${first.version}–${last.version}` : "no entries";
  $("history-newer").disabled = !view.before.length;
  $("history-older").disabled = !last || last.version <= 1 || view.entries.length < PAGE;
}

async function showDiff() {
  const v1 = Number($("diff-v1").value), v2 = Number($("diff-v2").value);
  const out = $("diff-result");
  if (!v1 || !v2) { out.replaceChildren(el("p", { class: "muted" }, "Give two versions.")); return; }
  try {
    const diff = await api("GET", `/v1/diff?v1=${v1}&v2=${v2}`);
    const rows = diff.changes.map((c) => el("tr", { "data-path": c.path }, el("td", { class: "path" }, c.path),
      el("td", { class: "old" }, fmtValue(c.path, c.old)), el("td", {}, "→"),
      el("td", { class: "new" }, fmtValue(c.path, c.new))));
    out.replaceChildren(el("p", { class: "muted small" }, `From version ${diff.v1} to version ${diff.v2}:`),
      rows.length ? el("table", { class: "grid diff" }, el("tbody", {}, ...rows))
        : el("p", { class: "muted" }, "The two versions hold the same values."));
  } catch (err) { out.replaceChildren(el("p", { class: "error" }, err.message)); }
}
