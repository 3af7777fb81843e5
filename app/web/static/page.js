// The status page's script: every call is an API call under the API's rules (the token, when the server
// wants one, comes from this tab's sessionStorage and goes in the Authorization header, never a URL);
// every name and path the server sends is put in as text (textContent), never parsed as HTML.
"use strict";

const TOKEN_KEY = "cloudcoin-api-token";
const FINAL = new Set(["completed", "failed", "cancelled"]);
const state = { selected: null, followed: new Map(), rows: new Map(), balances: new Map() };

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// -- small helpers -----------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

function fill(tbody, rows) { tbody.replaceChildren(...rows); }
function baseName(path) { return String(path || "").split("/").filter(Boolean).pop() || String(path || ""); }
function num(value) { return typeof value === "number" ? value.toLocaleString("en-US") : (value ?? ""); }
function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return (n / 1000 ** i).toFixed(i ? 1 : 0) + " " + units[i];
}
function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function messageOf(body) {
  if (body && typeof body.error === "string") return body.error;
  if (body && typeof body.message === "string") return body.message;
  return "Unexpected answer";
}
function showError(text) {
  const node = document.getElementById("page-error");
  node.textContent = text || "";
  node.hidden = !text;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- the API -----------------------------------------------------------------------------------------

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { Accept: "application/json", ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401 && /bearer/i.test(response.headers.get("WWW-Authenticate") || "")) askForToken();
  if (!response.ok) throw new ApiError(response.status, messageOf(data));
  return { status: response.status, data };
}

function askForToken() {
  sessionStorage.removeItem(TOKEN_KEY);  // missing or refused: ask (once) for the right one
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.getElementById("token-input").focus();
}

// -- wallets -----------------------------------------------------------------------------------------

async function loadWallets() {
  const { data } = await api("GET", "/api/wallets/list");
  if (!state.selected || !data.wallets.some((w) => w.wallet_path === state.selected)) {
    state.selected = (data.wallets.find((w) => w.active) || data.wallets[0] || {}).wallet_path || null;
  }
  // The list shows at once; each balance fills its row when it arrives (a big wallet takes a moment).
  const rows = data.wallets.map((w) => {
    const known = state.balances.get(w.wallet_path);
    const coins = el("td", { className: "num coins" }, w.online === false ? "offline" : (known ? num(known.total_notes) : "…"));
    const value = el("td", { className: "num value" }, known ? num(known.total_value) : "");
    const row = el("tr", { className: w.active ? "active" : "", dataset: { walletPath: w.wallet_path } },
      el("td", {}, w.active ? el("span", { className: "badge", title: "the active wallet" }, "active") : ""),
      el("td", { className: "name" }, w.wallet_name),
      el("td", { className: "path" }, w.wallet_path),
      coins, value);
    row.addEventListener("click", () => { state.selected = w.wallet_path; selectWallet(); loadBackups(); });
    if (w.online !== false) {
      api("GET", "/api/wallets/balance?wallet_path=" + encodeURIComponent(w.wallet_path)).then(({ data: b }) => {
        state.balances.set(w.wallet_path, b);
        coins.textContent = num(b.total_notes);
        value.textContent = num(b.total_value);
      }, () => { coins.textContent = "?"; });
    }
    return row;
  });
  fill(document.querySelector("#wallets tbody"), rows);
  const select = document.getElementById("backup-wallet");
  const chosen = select.value || state.selected;
  select.replaceChildren(...data.wallets.map((w) => el("option", { value: w.wallet_path }, w.wallet_name)));
  select.value = data.wallets.some((w) => w.wallet_path === chosen) ? chosen : state.selected;
  selectWallet();
}

function selectWallet() {
  document.getElementById("backups-wallet").textContent = baseName(state.selected) || "—";
}

// -- jobs --------------------------------------------------------------------------------------------

function jobRow(job) {
  let row = state.rows.get(job.id);
  if (!row) {
    row = el("tr", { dataset: { jobId: job.id } },
      el("td", { className: "kind" }), el("td", { className: "wallet" }), el("td", { className: "status" }),
      el("td", {}, el("div", { className: "bar" }, el("div", { className: "fill" })), el("div", { className: "progress-text" })),
      el("td", { className: "actions" }));
    state.rows.set(job.id, row);
  }
  return row;
}

function renderJob(job) {
  const row = jobRow(job);
  if (row.dataset.status && FINAL.has(row.dataset.status)) return row;  // a finished job never changes again
  const progress = Math.max(Number(row.dataset.progress || 0), Number(job.progress || 0));
  row.dataset.status = job.status;
  row.dataset.progress = String(progress);
  row.querySelector(".kind").textContent = job.kind || "";
  row.querySelector(".wallet").textContent = baseName(job.wallet_path);
  row.querySelector(".wallet").title = job.wallet_path || "";
  const status = row.querySelector(".status");
  status.textContent = job.status;
  status.className = "status status-" + job.status;
  row.querySelector(".fill").style.width = progress + "%";
  const parts = [progress + "%"];
  if (job.total) parts.push(`${num(job.done)}/${num(job.total)} files`);
  if (job.bytes_total) parts.push(`${bytes(job.bytes_done)} of ${bytes(job.bytes_total)}`);
  if (job.rate) parts.push(bytes(job.rate) + "/s");
  if (job.eta_seconds != null && !FINAL.has(job.status)) parts.push(Math.round(job.eta_seconds) + " s left");
  const detail = job.status === "failed" ? messageOf(job.error && job.error.body) : (job.phase || job.message || "");
  if (detail) parts.push(detail);
  row.querySelector(".progress-text").textContent = parts.join(" · ");
  const actions = row.querySelector(".actions");
  if (!FINAL.has(job.status) && !actions.firstChild) {
    const button = el("button", { className: "cancel", type: "button" }, "Cancel");
    button.addEventListener("click", () => cancelJob(job.id, button));
    actions.append(button);
  } else if (FINAL.has(job.status)) {
    actions.replaceChildren();
  }
  return row;
}

async function loadJobs() {
  const { data } = await api("GET", "/api/jobs?limit=15");
  const rows = data.jobs.map((job) => {
    if (!FINAL.has(job.status)) follow(job.id);
    return renderJob(job);
  });
  // Newest first; a job just started from the form and not yet listed stays on top.
  const tbody = document.querySelector("#jobs tbody");
  const listed = new Set(rows);
  tbody.replaceChildren(...[...tbody.children].filter((row) => !listed.has(row)), ...rows);
}

function follow(jobId) {
  if (state.followed.has(jobId)) return;
  const url = `/api/jobs/${encodeURIComponent(jobId)}/events`;
  const done = (job) => {
    renderJob(job);
    if (!FINAL.has(job.status)) return false;
    const stop = state.followed.get(jobId);
    state.followed.delete(jobId);
    if (stop) stop();
    refreshAfterJob();
    return true;
  };
  if (!sessionStorage.getItem(TOKEN_KEY) && window.EventSource) {
    const source = new EventSource(url);
    state.followed.set(jobId, () => source.close());
    for (const name of ["progress", ...FINAL]) source.addEventListener(name, (event) => done(JSON.parse(event.data)));
    return;
  }
  // With a token: an EventSource cannot send the Authorization header, so read the stream with fetch().
  const controller = new AbortController();
  state.followed.set(jobId, () => controller.abort());
  streamEvents(url, controller.signal, done).catch(() => state.followed.delete(jobId));
}

async function streamEvents(url, signal, onJob) {
  let lastId = "";
  for (let attempt = 0; attempt < 20 && !signal.aborted; attempt++) {
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (lastId) headers["Last-Event-ID"] = lastId;
    const response = await fetch(url, { headers, signal });
    if (!response.ok) throw new ApiError(response.status, "event stream refused");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("id:")) lastId = line.slice(3).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length && onJob(JSON.parse(data.join("\n")))) return;
      }
    }
    await sleep(1000);  // the stream ended before the final event: reopen where it stopped
  }
}

async function cancelJob(jobId, button) {
  button.disabled = true;
  try {
    const { data } = await api("POST", `/api/jobs/${encodeURIComponent(jobId)}/cancel`);
    renderJob(data);
  } catch (error) {
    showError(`Cancel: ${error.message}`);
    button.disabled = false;
  }
}

let refreshTimer = null;
function refreshAfterJob() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    loadHealth().catch(report);
    loadWallets().catch(report);
    loadBackups();
    loadPlans();
  }, 300);
}

// -- the backup form ---------------------------------------------------------------------------------

async function startBackup(event) {
  event.preventDefault();
  const message = document.getElementById("backup-message");
  const body = {
    wallet_path: document.getElementById("backup-wallet").value,
    destination: document.getElementById("backup-destination").value.trim(),
  };
  message.textContent = "submitting…";
  message.className = "muted";
  try {
    const { data } = await api("POST", "/api/wallets/backup", body, { Prefer: "respond-async" });
    message.textContent = "started job " + data.job_id;
    const row = renderJob({ id: data.job_id, kind: "wallet-backup", status: data.status || "queued", progress: 0,
      wallet_path: body.wallet_path, message: "Queued" });
    document.querySelector("#jobs tbody").prepend(row);
    follow(data.job_id);
    loadHealth().catch(report);
  } catch (error) {
    message.textContent = error.message;
    message.className = "error";
  }
}

// -- plans and known backups (plans.md) --------------------------------------------------------------

function unavailable(note, error) {
  note.hidden = false;
  note.textContent = error.status === 404 || error.status === 405
    ? "Not available on this server." : error.message;
}

async function loadPlans() {
  const note = document.getElementById("plans-note");
  try {
    const { data } = await api("GET", "/api/backup-plans");
    note.hidden = data.plans.length > 0;
    note.textContent = "No backup plans yet.";
    fill(document.querySelector("#plans tbody"), data.plans.map((plan) => {
      const last = plan.last_run;
      const lastText = last ? `${last.status} ${when(last.finished_at)}` : "never";
      const places = el("ul", {}, ...(last ? last.destinations : []).map((d) =>
        el("li", { className: "status-" + d.status }, `${d.destination}: ${d.status}${d.error ? " (" + d.error + ")" : ""}`)));
      return el("tr", { dataset: { planId: plan.id } },
        el("td", {}, plan.name || plan.id),
        el("td", { title: plan.wallet_path }, baseName(plan.wallet_path)),
        el("td", {}, plan.schedule, plan.enabled === false ? " (disabled)" : ""),
        el("td", {}, when(plan.next_run_at)),
        el("td", {}, el("span", { className: "status-" + (last ? last.status : "") }, lastText), places));
    }));
  } catch (error) {
    unavailable(note, error);
  }
}

async function loadBackups() {
  const note = document.getElementById("backups-note");
  const tbody = document.querySelector("#backups tbody");
  if (!state.selected) return;
  try {
    const { data } = await api("GET", "/api/wallets/backups?wallet_path=" + encodeURIComponent(state.selected));
    note.hidden = data.backups.length > 0;
    note.textContent = "No backups found.";
    fill(tbody, data.backups.map((b) => el("tr", {},
      el("td", {}, when(b.created_at)),
      el("td", { className: "path" }, b.zip_path, b.readable === false ? " (unreadable)" : ""),
      el("td", { className: "num" }, bytes(b.bytes)),
      el("td", { className: "num" }, num(b.coins)),
      el("td", {}, b.encrypted == null ? "" : (b.encrypted ? "yes" : "no")),
      el("td", {}, when(b.verified_at)))));
  } catch (error) {
    fill(tbody, []);
    unavailable(note, error);
  }
}

// -- start -------------------------------------------------------------------------------------------

function report(error) { showError(error.status === 401 ? "" : error.message); }

async function loadHealth() {
  const { data } = await api("GET", "/api/health");
  document.getElementById("server-status").textContent =
    `version ${data.version} · ${data.jobs.running} running, ${data.jobs.queued} queued`;
}

async function refreshAll() {
  showError("");
  await Promise.all([loadHealth(), loadWallets(), loadJobs()]).catch(report);
  await Promise.all([loadPlans(), loadBackups()]);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("backup-form").addEventListener("submit", startBackup);
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value);
    document.getElementById("token-form").hidden = true;
    refreshAll();
  });
  refreshAll();
  // Jobs started elsewhere (the CLI, a plan) appear within 5 s; running ones move with their own stream.
  setInterval(() => { loadJobs().catch(report); }, 5000);
  setInterval(() => { loadHealth().catch(report); loadWallets().catch(report); }, 15000);
});
