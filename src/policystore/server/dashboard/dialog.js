// The confirm dialog of every write: a preview of what it changes (a dry run on the server) before the reason.

import { fmtValue } from "./format.js";
import { $, el } from "./util.js";

const GROUPS = ["active_mode", "risk.", "ai.", "emergency.", "trading.", "instruments.", "modes.", "hard_limits.",
  "strategies."];

function group(path) {
  const index = GROUPS.findIndex((prefix) => path === prefix || path.startsWith(prefix));
  return index < 0 ? GROUPS.length : index;
}

function renderPreview(preview, role) {
  const raised = new Set(preview.raises_risk);
  const verdict = preview.allowed
    ? `Your role (${role}) may make this change` + (raised.size ? "; it raises risk, which needs an admin." : ".")
    : `Needs the ${preview.required_role} role: your role (${role}) may not make this change.`;
  const allowed = $("confirm-allowed");
  allowed.textContent = verdict;
  allowed.className = preview.allowed ? "verdict ok" : "verdict refused";
  $("confirm-stale").hidden = !preview.stale;
  const changes = [...preview.changes].sort((a, b) => group(a.path) - group(b.path) || a.path.localeCompare(b.path));
  const rows = changes.map((c) => el("tr", { class: raised.has(c.path) ? "raises" : "", "data-path": c.path },
    el("td", { class: "path" }, c.path), el("td", { class: "old" }, fmtValue(c.path, c.old)),
    el("td", { class: "arrow" }, "→"), el("td", { class: "new" }, fmtValue(c.path, c.new)),
    el("td", { class: "risk" }, raised.has(c.path) ? "raises risk" : "")));
  $("confirm-changes").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { class: "muted", colspan: "5" }, "Nothing would change."))]));
}

// Open the dialog for one write. preview() answers the server's dry run; commit(reason, baseVersion)
// makes the write on the version previewed (a change made meanwhile is a conflict, not a surprise).
export function confirmWrite({ title, text, role, preview, commit, done, failed }) {
  const dialog = $("confirm");
  const ok = $("confirm-ok");
  let previewed = null;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-reason").value = "";
  $("confirm-allowed").textContent = "Checking what this would change…";
  $("confirm-allowed").className = "verdict";
  $("confirm-stale").hidden = true;
  $("confirm-changes").replaceChildren();
  ok.disabled = true;
  const opened = {};
  confirmWrite.current = opened;
  preview().then((result) => {
    if (confirmWrite.current !== opened) return;
    previewed = result;
    renderPreview(result, role);
    ok.disabled = !result.allowed;
  }).catch((err) => {
    if (confirmWrite.current !== opened) return;
    $("confirm-allowed").textContent = `This change would be refused: ${err.message}`;
    $("confirm-allowed").className = "verdict refused";
  });
  $("confirm-form").onsubmit = async (event) => {
    event.preventDefault();
    const reason = $("confirm-reason").value.trim();
    if (!reason || !previewed || !previewed.allowed) return;
    dialog.close();
    try {
      done(await commit(reason, previewed.base_version));
    } catch (err) { failed(err); }
  };
  $("confirm-cancel").onclick = () => dialog.close();
  dialog.showModal();
  $("confirm-reason").focus();
}
