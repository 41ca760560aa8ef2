// The fleet panel: every process that follows the store, the version it has applied, how far behind it is and
// when it was last heard (lost members in red); and the sentence a write's wait for the fleet comes to.

import { $, api, el } from "./util.js";

// How often the panel reads /v1/fleet; a change from the stream reads it at once as well.
const REFRESH_MS = 2000;
let timer = null;

function heard(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function note(member) {
  const notes = [];
  if (member.stale) notes.push("stale: answering from a fallback");
  if (member.error) notes.push(`cannot report: ${member.error}`);
  return notes.join("; ");
}

function row(member) {
  const lost = member.status === "lost";
  const behind = !lost && member.lag_versions > 0;
  const cls = [lost ? "lost" : "", behind ? "behind" : "", member.error ? "failing" : ""].filter(Boolean).join(" ");
  return el("tr", { class: cls, "data-member": member.member_id, "data-name": member.name, "data-status": member.status },
    el("th", { class: "field" }, member.name),
    el("td", { class: "mono" }, member.host), el("td", { class: "num" }, member.pid),
    el("td", { class: "num version" }, member.version),
    el("td", { class: "num lag" }, member.lag_versions ? `${member.lag_versions} behind` : "current"),
    el("td", { class: "num heard" }, heard(member.lag_seconds)),
    el("td", { class: "status" }, lost ? "LOST" : "live"),
    el("td", { class: "note" }, note(member)));
}

function render(data) {
  $("fleet-summary").textContent = data.members.length
    ? `store at v${data.version} · ${data.live} live · ${data.lost} lost · ${data.behind} behind`
    : `store at v${data.version} · no process follows the store`;
  $("fleet-summary").className = "muted small" + (data.lost || data.behind ? " warn-text" : "");
  const head = el("tr", {}, ...["process", "host", "pid", "version", "lag", "last heard", "status", ""]
    .map((h, i) => el("th", { class: i ? "" : "field" }, h)));
  $("fleet").replaceChildren(el("thead", {}, head), el("tbody", {}, ...data.members.map(row)));
}

export async function loadFleet() {
  try {
    render(await api("GET", "/v1/fleet"));
  } catch (err) {
    $("fleet-summary").textContent = `The fleet cannot be read: ${err.message}`;
    $("fleet-summary").className = "small error";
  }
}

export function startFleet() {
  clearInterval(timer);
  loadFleet();
  timer = setInterval(loadFleet, REFRESH_MS);
}

export function stopFleet() {
  clearInterval(timer);
  timer = null;
}

const member = (m) => `${m.name} (pid ${m.pid} on ${m.host}, at v${m.version})`;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "es"}`;

// What a write's wait for the fleet came to: [sentence, all clear]. Lost processes (not heard for 5 s) hold up
// no wait, but nobody knows what they run: they are named, and the outcome is not all clear.
export function fleetReport(fleet) {
  if (!fleet) return ["", true];
  if (fleet.unread) return [`the fleet could not be read to confirm it (${fleet.unread})`, false];
  const live = fleet.acked.length + fleet.missing.length;
  const lost = fleet.lost.length
    ? `; ${plural(fleet.lost.length, "process")} LOST (not heard for 5 s): ${fleet.lost.map(member).join(", ")}` : "";
  if (!live) return [`no live process follows the store${lost}`, !lost];
  if (fleet.complete) {
    return [`confirmed by all ${plural(live, "live process")} in ${fleet.waited.toFixed(2)} s${lost}`, !lost];
  }
  return [`NOT confirmed by ${fleet.missing.length} of ${plural(live, "live process")} within `
    + `${fleet.waited.toFixed(1)} s: ${fleet.missing.map(member).join(", ")}${lost}`, false];
}
