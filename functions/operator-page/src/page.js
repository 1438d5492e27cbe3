// The operator page: reads the summary with the operator's token and shows it.
// The token: an OpenID Connect implicit redirect leaves it in the URL fragment
// (#access_token=… or #id_token=…); it is kept for the tab in sessionStorage and the fragment
// is cleared so that it does not stay in the address bar or the history.
"use strict";

const FLOW_NAMES = {
  review: "Review", issue_alert: "Issue alerts", rights_expiry: "Rights expiry",
  campaign: "Campaign", sharing: "Sharing", field_ingest: "Field ingest",
  ugc_intake: "UGC intake", conversation: "Conversation", opt_out: "Opt-out",
};

function token() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromFragment = fragment.get("access_token") || fragment.get("id_token");
  if (fromFragment) {
    sessionStorage.setItem("operator-token", fromFragment);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("operator-token");
}

function cell(row, text, numeric) {
  const td = row.insertCell();
  td.textContent = String(text);
  if (numeric) td.className = "n";
  return td;
}

function when(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC");
}

function show(summary) {
  document.getElementById("from").value = summary.from;
  document.getElementById("to").value = summary.to;
  document.getElementById("flow").value = summary.flow;

  const deliveries = document.querySelector("#deliveries tbody");
  deliveries.replaceChildren();
  for (const d of summary.deliveries) {
    const row = deliveries.insertRow();
    cell(row, FLOW_NAMES[d.flow] || d.flow);
    for (const n of [d.total, d.accepted, d.sent, d.delivered, d.read, d.failed]) cell(row, n, true);
    if (d.failed > 0) row.className = "alert";
  }
  document.getElementById("deliveries").hidden = summary.deliveries.length === 0;
  document.getElementById("deliveries-empty").hidden = summary.deliveries.length !== 0;

  const shares = document.querySelector("#sharing tbody");
  shares.replaceChildren();
  const at = (ms) => (ms ? when(ms) : "–");
  for (const r of summary.sharing) {
    const row = shares.insertRow();
    cell(row, at(r.requested_at_ms));
    cell(row, r.asset);
    cell(row, r.version);
    cell(row, r.rep);
    cell(row, r.recipient.slice(0, 12) + "…");
    cell(row, at(r.sent_at_ms));
    cell(row, at(r.delivered_at_ms));
    cell(row, at(r.read_at_ms));
  }
  const sharingShown = summary.flow === "all" || summary.flow === "sharing";
  document.getElementById("sharing-section").hidden = !sharingShown;
  document.getElementById("sharing").hidden = summary.sharing.length === 0;
  document.getElementById("sharing-empty").hidden = summary.sharing.length !== 0;

  const dlqs = document.querySelector("#dead-letters tbody");
  dlqs.replaceChildren();
  for (const q of summary.dead_letters) {
    const row = dlqs.insertRow();
    cell(row, q.queue);
    cell(row, q.depth, true);
    if (q.depth > 0) row.className = "alert";
  }
  document.getElementById("dead-letters").hidden = summary.dead_letters.length === 0;
  document.getElementById("dlq-empty").hidden = summary.dead_letters.length !== 0;

  const scans = document.getElementById("scans");
  scans.replaceChildren();
  const add = (term, text) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = text;
    scans.append(dt, dd);
  };
  const s = summary.scans;
  add("Rights-expiry scan",
    s.rights_expiry_checkpoint_ms ? "unfinished, checkpointed " + when(s.rights_expiry_checkpoint_ms)
      : s.rights_expiry_finished_ms ? "last finished " + when(s.rights_expiry_finished_ms)
      : "none recorded yet");
  add("DAM poll watermark", s.dam_poll_watermark ? s.dam_poll_watermark + " (UTC)" : "no poll has finished yet");

  const held = summary.dead_letters.reduce((n, q) => n + q.depth, 0);
  const status = document.getElementById("status");
  status.className = held > 0 ? "error" : "";
  status.textContent = "Showing " + summary.from + " to " + summary.to
    + (summary.flow === "all" ? ", all flows" : ", " + (FLOW_NAMES[summary.flow] || summary.flow))
    + (held > 0 ? ". " + held + " dead-lettered record(s) need attention." : ".");
  document.getElementById("content").hidden = false;
}

async function load(params) {
  const status = document.getElementById("status");
  const bearer = token();
  const headers = bearer ? { Authorization: "Bearer " + bearer } : {};
  let response;
  try {
    response = await fetch("/operator/api/summary?" + params.toString(), { headers });
  } catch (e) {
    status.className = "error";
    status.textContent = "The operator API could not be reached: " + e.message;
    return;
  }
  if (response.status === 401 || response.status === 403) {
    document.getElementById("content").hidden = true;
    status.className = "error";
    status.textContent = "Sign in required: the operator API refused the request ("
      + response.status + "). Open this page through your identity provider's sign-in.";
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    status.className = "error";
    status.textContent = body.error || ("The summary could not be read (HTTP " + response.status + "). Try again.");
    return;
  }
  show(body);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["from", "to", "flow"]) {
    const value = params.get(name);
    if (value) document.getElementById(name).value = value;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams(new FormData(form));
    history.replaceState(null, "", location.pathname + "?" + chosen.toString());
    load(chosen);
  });
  load(params);
});
