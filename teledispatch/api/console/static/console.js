// The teledispatch console: reads the /v1 JSON routes with the API key kept in this tab's
// sessionStorage and redraws in place. Every value from the server is written as text
// (textContent), never as HTML, so no message field can become markup.
"use strict";

const KEY = "teledispatch.key";
const $ = (id) => document.getElementById(id);
const state = { job: null, cursor: null, timer: null };

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell ?? "";
    tr.appendChild(td);
  }
  return tr;
}

function bar(fraction) {
  const outer = el("div", null, "bar");
  const inner = el("div");
  inner.style.width = `${Math.round(100 * fraction)}%`;
  outer.appendChild(inner);
  return outer;
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new Error("enter an API key");
  const headers = { Authorization: `Bearer ${key}`, ...(options.headers || {}) };
  const resp = await fetch(path, { ...options, headers });
  if (resp.status === 401) {
    sessionStorage.removeItem(KEY);
    throw new Error("the API key was refused");
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw new Error(`${resp.status}: ${detail || resp.statusText}`);
  }
  return body;
}

function when(iso) {
  return iso ? new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

function counts(map) {
  return Object.entries(map).map(([s, n]) => `${s} ${n}`).join(" · ");
}

function localIso(input) {
  return input.value ? new Date(input.value).toISOString() : null;
}

// --- jobs ---------------------------------------------------------------------------------

function jobQuery(cursor) {
  const q = new URLSearchParams({ limit: "50" });
  const pairs = [["account", $("f-account").value], ["status", $("f-status").value],
    ["priority", $("f-priority").value], ["created_from", localIso($("f-from"))],
    ["created_to", localIso($("f-to"))], ["cursor", cursor]];
  for (const [k, v] of pairs) if (v) q.set(k, v);
  return `/v1/jobs?${q}`;
}

async function loadJobs() {
  const page = await api(jobQuery(null));
  const body = $("jobs").tBodies[0];
  body.replaceChildren();
  for (const job of page.jobs) {
    const tr = row([el("code", job.job_id), job.account, job.priority, when(job.created_at),
      bar(job.progress), counts(job.counts)]);
    tr.className = "job" + (job.job_id === state.job ? " selected" : "");
    tr.dataset.jobId = job.job_id;
    tr.addEventListener("click", () => openJob(job.job_id));
    body.appendChild(tr);
  }
  state.cursor = page.next_cursor;
  $("jobs-more").hidden = !page.next_cursor;
}

async function moreJobs() {
  if (!state.cursor) return;
  const page = await api(jobQuery(state.cursor));
  const body = $("jobs").tBodies[0];
  for (const job of page.jobs) {
    const tr = row([el("code", job.job_id), job.account, job.priority, when(job.created_at),
      bar(job.progress), counts(job.counts)]);
    tr.className = "job";
    tr.dataset.jobId = job.job_id;
    tr.addEventListener("click", () => openJob(job.job_id));
    body.appendChild(tr);
  }
  state.cursor = page.next_cursor;
  $("jobs-more").hidden = !page.next_cursor;
}

function rate(job) {
  const finished = Object.entries(job.counts)
    .filter(([s]) => !["queued", "deferred", "sending"].includes(s))
    .reduce((sum, [, n]) => sum + n, 0);
  const elapsed = (Date.now() - new Date(job.created_at).getTime()) / 1000;
  return elapsed > 0 ? `${(finished / elapsed).toFixed(1)}/s` : "";
}

async function loadJob() {
  if (!state.job) return;
  const id = encodeURIComponent(state.job);
  const [job, failures] = await Promise.all([api(`/v1/jobs/${id}`), api(`/v1/jobs/${id}/failures`)]);
  $("job-detail").hidden = false;
  $("job-id").textContent = job.job_id;
  $("job-account").textContent = `${job.account} (${job.channel})`;
  $("job-total").textContent = job.total;
  $("job-state").textContent = job.cancelled ? "cancelled" : job.done ? "done" : "in progress";
  $("job-bar").style.width = `${Math.round(100 * job.progress)}%`;
  $("job-progress").textContent = `${(100 * job.progress).toFixed(1)}%`;
  $("job-rate").textContent = job.done ? "—" : rate(job);
  $("job-eta").textContent = job.done ? "done" : when(job.eta) || "—";
  $("job-paused").textContent = job.paused || "";
  $("job-paused").hidden = !job.paused;
  const countBody = $("job-counts").tBodies[0];
  countBody.replaceChildren(...Object.entries(job.counts).map(([s, n]) => {
    const tr = row([s, String(n)]);
    tr.dataset.status = s;
    return tr;
  }));
  const failBody = $("failures").tBodies[0];
  failBody.replaceChildren(...failures.groups.map((g) => {
    const examples = el("div");
    for (const e of g.examples) examples.appendChild(el("div", `${e.phone}: ${e.error_text || ""}`));
    const tr = row([g.status, g.error_code || "", String(g.count), examples]);
    tr.dataset.code = g.error_code || "";
    return tr;
  }));
  $("btn-cancel").disabled = job.done || job.cancelled;
  $("btn-retry").disabled = !job.counts.failed;
}

async function openJob(jobId) {
  state.job = jobId;
  $("action-result").textContent = "";
  for (const tr of $("jobs").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.jobId === jobId);
  await loadJob().catch((e) => notice(e.message));
}

async function act(verb) {
  if (!state.job) return;
  const id = encodeURIComponent(state.job);
  try {
    const result = await api(`/v1/jobs/${id}/${verb}`, { method: "POST" });
    if (verb === "cancel") {
      $("action-result").textContent = `cancelled ${result.cancelled} messages not yet claimed`;
    } else {
      const skipped = result.skipped.map((s) => `skipped ${s.count}: ${s.reason}`).join("; ");
      $("action-result").textContent = `retried ${result.retried}` + (skipped ? `; ${skipped}` : "");
    }
    await refresh();
  } catch (e) {
    $("action-result").textContent = e.message;
  }
}

// --- accounts -----------------------------------------------------------------------------

function use(account) {
  if (!account.in_use) return "unknown (Redis unreachable)";
  const parts = [];
  const lim = account.limits;
  if (lim.requests_per_second) parts.push(`${account.in_use.requests_per_second}/${lim.requests_per_second} req/s`);
  if (lim.messages_per_second) parts.push(`${account.in_use.messages_per_second}/${lim.messages_per_second} msg/s`);
  if (lim.messages_per_hour) parts.push(`limit ${lim.messages_per_hour}/h`);
  if (lim.messages_per_day) parts.push(`limit ${lim.messages_per_day}/d`);
  if (lim.concurrency) parts.push(`concurrency ${lim.concurrency}`);
  return parts.length ? parts.join(" · ") : "no limits";
}

async function loadAccounts() {
  const accounts = await api("/v1/accounts");
  const select = $("f-account");
  const chosen = select.value;
  select.replaceChildren(el("option", "any"));
  select.options[0].value = "";
  for (const a of accounts) select.appendChild(el("option", a.account));
  select.value = chosen;
  $("accounts").tBodies[0].replaceChildren(...accounts.map((a) => {
    const circuit = a.circuit ? el("span", a.circuit.line || a.circuit.state, `state-${a.circuit.state}`) : "unknown";
    const errors = a.waiting_errors.map((e) => `${e.error_code} ×${e.count}: ${e.example || ""}`).join("\n");
    const tr = row([a.account, a.channel, circuit, use(a), counts(a.backlog),
      `${a.oldest_due_age_s.toFixed(1)} s`, errors]);
    tr.dataset.account = a.account;
    return tr;
  }));
}

// --- routes -------------------------------------------------------------------------------

function member(m, first) {
  const state = m.circuit ? m.circuit.state : "unknown";
  const node = el("span", `${m.account === first ? "▶ " : ""}${m.account} (${state})`,
    `member state-${state}${m.account === first ? " first-choice" : ""}`);
  node.dataset.account = m.account;
  if (m.circuit && m.circuit.line) node.title = m.circuit.line;
  return node;
}

async function loadRoutes() {
  const routes = await api("/v1/routes");
  const rows = [];
  for (const r of routes) {
    for (const d of r.destinations) {
      const members = el("div", null, "members");
      for (const m of d.members) members.appendChild(member(m, d.first_choice));
      if (!d.first_choice) members.appendChild(el("span", "no member with a closed circuit", "warn"));
      const tr = row([r.route, d.prefix === "*" ? "any other" : `+${d.prefix}`, members]);
      tr.dataset.route = r.route;
      tr.dataset.prefix = d.prefix;
      rows.push(tr);
    }
  }
  if (!rows.length) rows.push(row(["no routes"]));
  $("routes").tBodies[0].replaceChildren(...rows);
}

// --- recipient search ----------------------------------------------------------------------

async function search(event) {
  event.preventDefault();
  const q = new URLSearchParams({ [$("search-by").value]: $("search-q").value.trim() });
  try {
    const found = await api(`/v1/messages?${q}`);
    const body = $("search-results").tBodies[0];
    body.replaceChildren(...found.map((m) => {
      const tr = row([when(m.created_at), m.phone, m.status, el("code", m.job_id), el("code", m.id),
        m.provider_id || "", m.error_code ? `${m.error_code}: ${m.error_text || ""}` : ""]);
      tr.addEventListener("click", () => openJob(m.job_id));
      return tr;
    }));
    if (!found.length) body.appendChild(row(["no messages found"]));
    notice("");
  } catch (e) {
    notice(e.message);
  }
}

// --- refresh -------------------------------------------------------------------------------

async function refresh() {
  try {
    await Promise.all([loadJobs(), loadAccounts(), loadRoutes(), loadJob()]);
    $("refreshed").textContent = `refreshed ${new Date().toLocaleTimeString()}`;
    notice("");
  } catch (e) {
    notice(e.message);
  }
}

function start() {
  if (state.timer) clearInterval(state.timer);
  refresh();
  state.timer = setInterval(refresh, Number(document.body.dataset.refreshMs) || 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    $("key").value = "";
    start();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    if (state.timer) clearInterval(state.timer);
    $("refreshed").textContent = "not connected";
  });
  $("job-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadJobs().catch((e) => notice(e.message));
  });
  $("jobs-more").addEventListener("click", () => moreJobs().catch((e) => notice(e.message)));
  $("btn-cancel").addEventListener("click", () => act("cancel"));
  $("btn-retry").addEventListener("click", () => act("retry"));
  $("search-form").addEventListener("submit", search);
  if (sessionStorage.getItem(KEY)) start();
});
