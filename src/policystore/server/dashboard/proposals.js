// The proposals panel: pending changes that need more than one admin, each with a preview of what it would do
// now (the server's dry run of applying it), who agreed so far, and the buttons to approve or reject it.

import { fmtTime, fmtValue } from "./format.js";
import { $, api, el, toast } from "./util.js";

let hooks = { role: () => null, name: () => null, approvals: () => 1, applied: () => {} };
const previews = new Map(); // proposal id + version -> the dry run of approving it
let shown = ""; // what the panel shows: redrawn only when it changes, so a reason being typed is kept

export function setupProposals(given) { hooks = given; }

function changeRows(changes, raised) {
  return changes.map((c) => el("tr", { class: raised.has(c.path) ? "raises" : "", "data-path": c.path },
    el("td", { class: "path" }, c.path), el("td", { class: "old" }, fmtValue(c.path, c.old)),
    el("td", { class: "arrow" }, "→"), el("td", { class: "new" }, fmtValue(c.path, c.new)),
    el("td", { class: "risk" }, raised.has(c.path) ? "raises risk" : "")));
}

// What applying the proposal would change now: the server's dry run for an admin, else what it changed when made.
async function previewOf(p, version) {
  if (hooks.role() !== "admin" || p.approved_by.includes(hooks.name())) return null;
  const key = `${p.id}@${version}`;
  if (!previews.has(key)) {
    previews.set(key, api("POST", `/v1/proposals/${p.id}/approve`, { dry_run: true, decisions: false })
      .catch(() => null));
  }
  return previews.get(key);
}

async function approve(p) {
  try {
    const result = await api("POST", `/v1/proposals/${p.id}/approve`, {});
    toast(result.status === "applied"
      ? `Proposal ${p.id} applied as version ${result.applied_version}.`
      : `Approved: ${result.approvals_missing} more approval(s) needed.`, "ok");
    hooks.applied();
  } catch (err) { toast(`Approval refused: ${err.message}`, "error"); }
  loadProposals();
}

async function reject(p, reason) {
  try {
    await api("POST", `/v1/proposals/${p.id}/reject`, { reason });
    toast(`Proposal ${p.id} rejected.`, "ok");
  } catch (err) { toast(`Rejection refused: ${err.message}`, "error"); }
  loadProposals();
}

function actions(p) {
  const me = hooks.name(), admin = hooks.role() === "admin";
  const mine = p.approved_by.includes(me);
  const approveButton = el("button", {
    class: "primary small-btn approve", "data-proposal": p.id, disabled: !admin || mine,
    title: !admin ? "Only admins approve." : mine ? "You approved it already: another admin must." : "",
    onclick: () => approve(p),
  }, mine ? "Approved by you" : "Approve");
  const reason = el("input", { type: "text", class: "reject-reason", maxlength: "500", placeholder: "reason to reject",
    "aria-label": `reason to reject proposal ${p.id}` });
  const canReject = admin || p.proposed_by === me;
  const rejectButton = el("button", { class: "small-btn reject", "data-proposal": p.id, disabled: !canReject,
    onclick: () => { if (reason.value.trim()) reject(p, reason.value.trim()); else reason.focus(); } },
  p.proposed_by === me && !admin ? "Withdraw" : "Reject");
  return el("div", { class: "proposal-actions" }, approveButton, reason, rejectButton);
}

function card(p, preview) {
  const raised = new Set(preview ? preview.raises_risk : p.raises_risk);
  const changes = preview ? preview.changes : p.diff;
  const head = el("div", { class: "proposal-head" },
    el("b", { class: "mono" }, p.id), ` by ${p.proposed_by}: ${p.reason}`,
    el("span", { class: "approvals" }, ` · ${p.approved_by.length} of ${p.approvals_required} approvals`
      + (p.approved_by.length ? ` (${p.approved_by.join(", ")})` : "")),
    el("span", { class: "muted small" }, ` · expires ${fmtTime(p.expires_at)}`));
  const what = preview ? "What approving it would change now:" : "What it changes:";
  return el("div", { class: "proposal", "data-proposal": p.id }, head,
    el("p", { class: "muted small" }, what),
    el("table", { class: "grid changes" }, el("tbody", {}, ...changeRows(changes, raised))),
    actions(p));
}

// Reload the panel: pending proposals first, with their previews.
export async function loadProposals(version = 0) {
  let listed;
  try { listed = (await api("GET", "/v1/proposals")).proposals; } catch { return; }
  const pending = listed.filter((p) => p.status === "pending");
  const signature = JSON.stringify([version, hooks.role(), hooks.approvals(),
    listed.slice(0, 20).map((p) => [p.id, p.status, p.approved_by])]);
  if (signature === shown) return;
  shown = signature;
  const cards = await Promise.all(pending.map(async (p) => card(p, await previewOf(p, version))));
  const required = hooks.approvals();
  $("proposals-rule").textContent = required > 1
    ? `${required} admins must agree to any change that raises risk` : "one admin may raise risk";
  const decided = listed.filter((p) => p.status !== "pending").slice(0, 3).map((p) =>
    el("li", { "data-proposal": p.id }, el("span", { class: "mono" }, p.id), ` ${p.status}`,
      p.status === "applied" ? ` as version ${p.applied_version}` : "", ` · ${p.reason}`));
  $("proposals").replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "No pending proposals.")]),
    decided.length ? el("ul", { class: "decided muted small" }, ...decided) : "");
}
