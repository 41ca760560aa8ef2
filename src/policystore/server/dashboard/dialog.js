// The confirm dialog of every write: a preview of what it changes (a dry run on the server) before the reason,
// with who may make it, how many admins must agree, and what it would do to the server's decision log.

import { fmtValue } from "./format.js";
import { $, el } from "./util.js";

const GROUPS = ["active_mode", "risk.", "ai.", "emergency.", "trading.", "instruments.", "change_control.", "modes.",
  "hard_limits.", "strategies."];

function group(path) {
  const index = GROUPS.findIndex((prefix) => path === prefix || path.startsWith(prefix));
  return index < 0 ? GROUPS.length : index;
}

// What the preview says of who may make the change: allowed, to be proposed, or refused for the role.
function verdictOf(preview, role, proposable) {
  if (preview.allowed) {
    return [`Your role (${role}) may make this change`
      + (preview.raises_risk.length ? "; it raises risk, which needs an admin." : "."), "ok"];
  }
  if (preview.proposal_required && proposable) {
    return [`It raises risk: ${preview.approvals_required} admins must agree. Confirm proposes it; `
      + "another admin approves it in the Proposals panel.", "propose"];
  }
  return [`Needs the ${preview.required_role} role: your role (${role}) may not make this change.`, "refused"];
}

function renderDecisions(impact) {
  const box = $("confirm-decisions");
  if (!impact) { box.hidden = true; box.replaceChildren(); return; }
  const pairs = Object.entries(impact.by_reason).map(([pair, count]) =>
    el("li", { "data-pair": pair }, el("span", { class: "num" }, String(count)), " ", pair.replace(" -> ", " → ")));
  box.replaceChildren(
    el("p", {}, `Decision log: of ${impact.signals} recorded signals, ${impact.changed} would be decided otherwise`
      + ` and ${impact.resized} sized otherwise (${impact.reproduced} decided as recorded before the change).`),
    pairs.length ? el("ul", { class: "pairs" }, ...pairs) : "");
  box.hidden = false;
}

function renderPreview(preview, role, proposable) {
  const raised = new Set(preview.raises_risk);
  const [verdict, kind] = verdictOf(preview, role, proposable);
  const allowed = $("confirm-allowed");
  allowed.textContent = verdict;
  allowed.className = `verdict ${kind}`;
  renderDecisions(preview.decisions);
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
// propose(reason), when given, proposes the change instead, for a write that needs more than one admin.
// The reason can be typed only once the preview is shown: what is agreed to is what was seen.
export function confirmWrite({ title, text, role, preview, commit, propose, done, proposed, failed }) {
  const dialog = $("confirm");
  const ok = $("confirm-ok");
  const reasonBox = $("confirm-reason");
  let previewed = null;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  reasonBox.value = "";
  reasonBox.disabled = true;
  $("confirm-allowed").textContent = "Checking what this would change…";
  $("confirm-allowed").className = "verdict";
  $("confirm-stale").hidden = true;
  $("confirm-changes").replaceChildren();
  renderDecisions(null);
  ok.disabled = true;
  ok.textContent = "Confirm";
  const opened = {};
  confirmWrite.current = opened;
  const proposing = () => previewed && !previewed.allowed && previewed.proposal_required && propose;
  preview().then((result) => {
    if (confirmWrite.current !== opened) return;
    previewed = result;
    renderPreview(result, role, Boolean(propose));
    ok.disabled = !(result.allowed || proposing());
    ok.textContent = proposing() ? "Propose" : "Confirm";
    reasonBox.disabled = ok.disabled;
    if (!ok.disabled) reasonBox.focus();
  }).catch((err) => {
    if (confirmWrite.current !== opened) return;
    $("confirm-allowed").textContent = `This change would be refused: ${err.message}`;
    $("confirm-allowed").className = "verdict refused";
  });
  $("confirm-form").onsubmit = async (event) => {
    event.preventDefault();
    const reason = reasonBox.value.trim();
    if (!reason || !previewed || !(previewed.allowed || proposing())) return;
    dialog.close();
    try {
      if (proposing()) proposed(await propose(reason));
      else done(await commit(reason, previewed.base_version));
    } catch (err) { failed(err); }
  };
  $("confirm-cancel").onclick = () => dialog.close();
  dialog.showModal();
  ok.focus();
}
