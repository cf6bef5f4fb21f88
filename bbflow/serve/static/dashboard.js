// The live dashboard of a bbflow cell: plain JavaScript, no build step.
// Runs are drawn from events alone (GET /api/state gives the events of the runs so far, then
// GET /events streams the rest); robots and agents are re-read from /api/state when events
// say they changed. Every POST goes to the same endpoints an operator's tools use.
// When the stream breaks (the cell stopped or was killed) the page says so and greys out what it
// shows until the cell answers again; then it draws the state anew: a cell started again is a new
// process, whose runs and event ids are not those of the one the page was watching.
"use strict";

const MAX_RUNS = 30;
const MAX_LOG = 200;
const STEP_STATES = {
  "step.start": "running", "step.ok": "ok", "step.error": "error", "step.retry": "retrying",
  "step.skip": "skipped", "undo.start": "undoing", "undo.ok": "undone", "undo.error": "undo-failed",
};
const ENDINGS = ["run.ok", "run.failed", "run.halted"];
const MARKS = { pending: "·", running: "▶", retrying: "↻", ok: "✓", skipped: "–", error: "✗", undoing: "↶",
                undone: "↺", "undo-failed": "!" };

const LEGEND = [["ok", "done"], ["running", "running"], ["retrying", "retrying (×N: attempts)"], ["error", "failed"],
                ["undoing", "undoing"], ["undone", "undone"], ["skipped", "skipped"], ["pending", "not started"]];

// clock: the cell's clock (event "time") minus the page's, in seconds, from the last /api/state.
const view = { reactors: {}, runs: new Map(), top: new Map(), schemas: {}, clock: null, started: null, lastEvent: null };
let refreshTimer = null;
let drawTimer = null;
let source = null;  // the EventSource of GET /events, while connected
let resyncTimer = null;
const pendingLog = [];

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/cloudevents+json";
    init.body = JSON.stringify(body);
  }
  let response;
  try { response = await fetch(path, init); } catch (e) { return { status: 0, ok: false, body: null }; }  // no answer
  let payload = null;
  try { payload = await response.json(); } catch (e) { payload = null; }
  return { status: response.status, ok: response.ok, body: payload };
}

// --- time -------------------------------------------------------------------------------------

function setClock(cellTime, uptime) {
  const now = Date.now() / 1000;
  view.clock = cellTime - now;
  view.started = now - uptime;
}

// The wall-clock time of an event's "time" (the cell's clock), as HH:MM:SS (with milliseconds if asked).
function wallTime(time, millis = false) {
  if (view.clock === null || typeof time !== "number") return "";
  const when = new Date((time - view.clock) * 1000);
  const text = when.toLocaleTimeString([], { hour12: false });
  return millis ? `${text}.${String(when.getMilliseconds()).padStart(3, "0")}` : text;
}

function span(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24, m = Math.floor(seconds / 60) % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(seconds % 60).padStart(2, "0")}s`;
  return `${seconds}s`;
}

function drawClock() {
  if (view.started === null) return;
  const now = Date.now() / 1000;
  const last = view.lastEvent === null ? "no event yet" : `last event ${span(now - view.lastEvent)} ago`;
  $("clock").textContent = `${new Date().toLocaleTimeString([], { hour12: false })} · up ${span(now - view.started)} · ${last}`;
  for (const node of document.querySelectorAll("[data-since]")) {
    node.textContent = `${(now + view.clock - Number(node.dataset.since)).toFixed(1)}s`;
  }
}

// --- runs, from events -------------------------------------------------------------------------

function applyRunEvent(event) {
  const name = event.event;
  let top = view.top.get(event.run);
  if (name === "run.start") {
    if (event.parent) {
      top = view.top.get(event.parent);
      if (top) view.top.set(event.run, top);
    } else {
      top = event.run;
      view.top.set(top, top);
      const steps = new Map((view.reactors[event.reactor] || []).map((s) => [s, { state: "pending", attempts: 0 }]));
      // an agent's command is a run of one step: its events name the command instead of a reactor
      view.runs.set(top, { id: top, reactor: event.reactor || event.command, status: "running", started: event.time, ended: null,
                           steps, undos: [], detail: "", errors: [] });
      trimRuns();
    }
  }
  const run = top ? view.runs.get(top) : null;
  if (!run) return false;
  const own = event.run === run.id;
  if (STEP_STATES[name] && event.step) {
    const key = own ? event.step : `${event.reactor}.${event.step}`;
    const step = run.steps.get(key) || { state: "pending", attempts: 0 };
    step.state = STEP_STATES[name];
    if (name === "step.start") step.attempts = event.attempt || step.attempts + 1;
    if (name === "step.error" && event.error) run.errors.push(`${key}: ${event.error.message}`);
    if (name === "undo.start") run.undos.push(key);
    run.steps.set(key, step);
  }
  if (ENDINGS.includes(name) && own) {
    run.status = name.slice(4);
    run.ended = event.time;
    run.detail = outcomeText(event);
  }
  return true;
}

function outcomeText(event) {
  if (event.event === "run.ok") return "result " + JSON.stringify(event.result);
  let text = event.error ? `${event.error.code ? `[${event.error.code}] ` : ""}${event.error.message || ""}` : "";
  for (const u of event.undo_errors || []) text += `; undo ${u.step}: ${u.message}`;
  return text;
}

function trimRuns() {
  const finished = [...view.runs.values()].filter((r) => r.status !== "running");
  for (const run of finished.slice(0, Math.max(0, view.runs.size - MAX_RUNS))) view.runs.delete(run.id);
}

function scheduleDraw() {
  if (drawTimer === null) drawTimer = setTimeout(draw, 100);  // a busy cell: one redraw per 100 ms, not per event
}

function draw() {
  drawTimer = null;
  drawRuns();
  const log = $("log");
  log.prepend(...pendingLog.splice(0).reverse());
  while (log.childElementCount > MAX_LOG) log.lastElementChild.remove();
}

function drawRuns() {
  const box = $("runs");
  const running = [...view.runs.values()].filter((r) => r.status === "running").length;
  $("runs-summary").textContent = view.runs.size ? `${running} running · last ${view.runs.size} shown` : "";
  const runs = [...view.runs.values()].reverse();
  runs.sort((a, b) => (a.status === "running") === (b.status === "running") ? 0 : a.status === "running" ? -1 : 1);
  if (!runs.length) { box.replaceChildren(el("p", { class: "empty" }, "No run yet. Send a signal.")); return; }
  box.replaceChildren(...runs.map(drawRun));
}

function drawRun(run) {
  const steps = [...run.steps.entries()].map(([name, s]) =>
    el("span", { class: `step ${s.state}`, title: `${name}: ${s.state}${s.attempts > 1 ? `, attempt ${s.attempts}` : ""}` },
       `${MARKS[s.state] || "?"} ${name}${s.attempts > 1 ? ` ×${s.attempts}` : ""}`));
  const took = run.ended !== null ? el("small", {}, `${(run.ended - run.started).toFixed(2)}s`)
    : el("small", { "data-since": run.started }, view.clock === null ? "" : `${(Date.now() / 1000 + view.clock - run.started).toFixed(1)}s`);
  const cancel = run.status === "running"
    ? el("button", { class: "danger", "data-run": run.id, onclick: () => cancelRun(run.id) }, "Cancel") : null;
  return el("article", { class: `card run ${run.status}`, "data-run": run.id, "data-status": run.status },
    el("h3", {}, run.reactor, el("small", { class: "mono", title: run.id }, run.id.slice(-8)),
       el("span", { class: `status ${run.status}` }, run.status), took,
       el("small", { class: "when", title: "started" }, wallTime(run.started))),
    el("div", { class: "steps" }, steps),
    run.undos.length ? el("div", { class: "rollback" }, "rollback: " + run.undos.map((s, i) => `${i + 1}. ${s}`).join("  →  ")) : null,
    run.detail ? el("div", { class: `detail ${run.status === "ok" ? "" : "bad"}` }, run.detail) : null,
    cancel ? el("div", { class: "actions" }, cancel) : null);
}

async function cancelRun(id) {
  const result = await api("POST", `/api/runs/${encodeURIComponent(id)}/cancel`);
  if (!result.ok) logLine({ event: "cancel refused", reason: result.body && result.body.error }, "bad");
}

// --- robots and agents, from the state --------------------------------------------------------

function drawRobots(robots) {
  const box = $("robots");
  if (!robots.length) { box.replaceChildren(el("p", { class: "empty" }, "No robot in this process.")); return; }
  box.replaceChildren(...robots.map((r) => el("article", { class: "card robot", "data-robot": r.name },
    el("h3", {}, r.name, el("small", {}, r.interface), el("span", { class: `safety ${r.safety}` }, r.safety)),
    el("div", { class: "row" }, "state ", el("b", {}, r.state), " · runs ", el("b", {}, r.runs),
       r.queue !== undefined ? [" · queue ", el("b", {}, r.queue)] : null),
    el("div", { class: "actions" },
       el("button", { onclick: () => arm(r.name, "arm"), disabled: r.safety === "armed" }, "Arm"),
       el("button", { class: "danger", onclick: () => arm(r.name, "disarm"), disabled: r.safety === "disarmed" }, "Disarm")))));
}

async function arm(robot, what) {
  const result = await api("POST", `/api/robots/${encodeURIComponent(robot)}/${what}`);
  if (!result.ok) logLine({ event: `${what} refused`, reason: result.body && result.body.error }, "bad");
  scheduleRefresh(0);
}

function drawAgents(agents) {
  const box = $("agents");
  if (!agents.length) { box.replaceChildren(el("p", { class: "empty" }, "No agent in this process.")); return; }
  box.replaceChildren(...agents.map((a) => el("article", { class: "card agent", "data-agent": a.name },
    el("h3", {}, a.name, a.robot ? el("small", {}, `on ${a.robot}`) : null),
    el("div", { class: "row" }, "queue ", el("b", {}, a.queue), " · handled ", el("b", {}, a.stats.handled),
       " · running ", el("b", {}, a.stats.runs_in_flight), " · errors ", el("b", {}, a.stats.errors)),
    el("table", { class: "fields" }, Object.entries(a.state).map(([k, v]) =>
       el("tr", {}, el("td", {}, k), el("td", { class: "mono" }, JSON.stringify(v))))))));
}

// The processes of the fleet this one has seen on the bus (none on the local bus, or alone).
function drawFleet(peers) {
  const shown = Array.isArray(peers) && peers.length > 0;
  $("fleet-title").hidden = !shown;
  $("fleet").hidden = !shown;
  if (!shown) return;
  $("fleet").replaceChildren(...peers.map((p) => el("article",
    { class: `card peer${p.up ? "" : " gone"}`, "data-process": p.process, "data-up": String(p.up) },
    el("h3", {}, p.process, p.self ? el("small", {}, "this process") : null,
       el("span", { class: `pill ${p.up ? "ok" : "bad"}` }, p.up ? "up" : "gone"),
       el("small", { class: "when", title: p.up ? "up since" : "gone since" }, wallTime(p.since))),
    el("div", { class: "row" }, "robots ", el("b", {}, p.robots.join(", ") || "none"),
       " · agents ", el("b", {}, p.agents.join(", ") || "none")))));
}

// The runs a crash cut off that this process's journal holds for an operator (recovery = "hold", or not
// undoable blindly). They are acted on with bbflow runs; the state is re-read every 5 seconds (start), so
// one an operator closed from a terminal goes away.
function drawHeld(held) {
  const shown = held === null || (Array.isArray(held) && held.length > 0);
  $("held-title").hidden = !shown;
  $("held").hidden = !shown;
  if (!shown) return;
  if (held === null) {
    $("held").replaceChildren(el("p", { class: "bad" }, "The journal cannot be read: runs held in it are not known."));
    return;
  }
  $("held").replaceChildren(...held.map((r) => el("article", { class: "card held", "data-run": r.id },
    el("h3", {}, r.reactor, el("small", { class: "mono" }, r.id),
       el("span", { class: "pill bad" }, r.recovering ? "being recovered" : "held")),
    el("div", { class: "row" }, "robot ", el("b", {}, r.robot || "none"), " · started ",
       el("b", {}, new Date(r.started).toLocaleString([], { hour12: false })),
       " · steps done ", el("b", {}, r.steps), " · in doubt ", el("b", {}, r.in_doubt)),
    r.note ? el("div", { class: "row" }, r.note) : null,
    el("div", { class: "row" }, "look: ", el("code", {}, `bbflow runs show ${r.id}`)),
    el("div", { class: "row" }, "roll it back, on its robot, once no bbflow run drives it: ", el("code", {}, `bbflow runs recover ${r.id}`)),
    el("div", { class: "row" }, "or, the cell put right by hand: ",
       el("code", {}, `bbflow runs recover ${r.id} --resolved`)))));
}

function drawCounters(counters) {
  const shown = [["signals in", "signal.in"], ["routed", "signal.routed"], ["dropped", "signal.dropped"],
                 ["runs ok", "run.ok"], ["failed", "run.failed"]];
  $("counters").replaceChildren(...shown.map(([label, key]) => el("div", {}, el("dt", {}, label), el("dd", {}, counters[key] || 0))));
}

function drawHealth(health) {
  const pill = $("health");
  pill.textContent = health === "ok" ? "supervisor up" : health;
  pill.className = `pill ${health === "ok" ? "ok" : "bad"}`;
}

// The cell did not answer (status 0) or refused: what the page shows may no longer be so.
function drawUnreachable(status) {
  drawHealth(status ? `cannot read the cell (${status})` : "cell unreachable");
  document.body.classList.add("stale");
}

async function refresh() {
  refreshTimer = null;
  const result = await api("GET", "/api/state");
  if (!result.ok) { drawUnreachable(result.status); return; }
  if (source !== null) document.body.classList.remove("stale");  // (else the runs wait for the resync)
  setClock(result.body.clock, result.body.uptime);
  drawRobots(result.body.robots);
  drawAgents(result.body.agents);
  drawFleet(result.body.fleet);
  drawHeld(result.body.held);
  drawCounters(result.body.counters);
  drawHealth(result.body.health);
}

function scheduleRefresh(delay = 250) {
  if (refreshTimer === null) refreshTimer = setTimeout(refresh, delay);
}

// --- the event log ----------------------------------------------------------------------------

function logLine(event, kind = "") {
  const what = event.type || event.step || event.agent || event.reason || "";
  const extra = event.reason && event.type ? `: ${event.reason}` : event.error ? `: ${event.error.message || event.error}` : "";
  const time = typeof event.time === "number" ? wallTime(event.time, true) : new Date().toLocaleTimeString([], { hour12: false });
  const text = [event.reactor || event.command, what].filter(Boolean).join(" ") + extra;
  pendingLog.push(el("li", { class: kind, title: text }, el("time", {}, time), el("b", {}, event.event), " ", text));
  if (pendingLog.length > MAX_LOG) pendingLog.splice(0, pendingLog.length - MAX_LOG);
  scheduleDraw();
}

function onEvent(event) {
  if (event.event === "stream.skipped") {
    logLine({ event: `skipped ${event.missed} events (this page fell behind)` }, "marker");
    scheduleRefresh(0);
    return;
  }
  if (event.event === "stream.closed") { lost("events: the cell stopped"); return; }
  view.lastEvent = Date.now() / 1000;
  if (event.event !== "step.start" && event.event !== "undo.start") {
    const bad = /error|failed|dropped|halted/.test(event.event);
    logLine(event, bad ? "bad" : "");
  }
  if (event.run && applyRunEvent(event)) scheduleDraw();
  if (!event.run || ENDINGS.includes(event.event)) scheduleRefresh();
}

function connect(after) {
  source = new EventSource(`/events?after=${after}`);
  source.onopen = () => { $("live").textContent = "events: live"; $("live").className = "pill ok"; };
  source.onerror = () => lost("events: reconnecting…");
  source.onmessage = (message) => onEvent(JSON.parse(message.data));
}

// The stream broke: instead of the browser's own reconnect (which would resume a new process's
// events on top of the old one's runs), read the state until the cell answers, then start over.
function lost(text) {
  if (source !== null) { source.close(); source = null; }
  $("live").textContent = text;
  $("live").className = "pill bad";
  scheduleRefresh(0);
  if (resyncTimer === null) resyncTimer = setTimeout(resync, 1000);
}

async function resync() {
  resyncTimer = null;
  const state = await api("GET", "/api/state");
  if (!state.ok) { drawUnreachable(state.status); resyncTimer = setTimeout(resync, 1000); return; }
  load(state.body);
  connect(state.body.last_event);
}

// Everything the page shows, from GET /api/state (its runs replace those shown).
function load(s) {
  document.body.classList.remove("stale");
  setClock(s.clock, s.uptime);
  view.reactors = s.reactors;
  view.runs.clear();
  view.top.clear();
  for (const run of [...s.runs.recent].reverse().concat(s.runs.running)) for (const e of run.events) applyRunEvent(e);
  drawRuns();
  drawRobots(s.robots);
  drawAgents(s.agents);
  drawFleet(s.fleet);
  drawHeld(s.held);
  drawCounters(s.counters);
  drawHealth(s.health);
}

// --- a form per declared signal, from its JSON Schema ------------------------------------------

function isOptional(schema) {
  return Array.isArray(schema.anyOf) && schema.anyOf.length === 2 && schema.anyOf.some((s) => s.type === "null")
    && !schema.anyOf.some((s) => s.type === "object" && s.maxProperties === 0);
}

// Each builder returns {node, get()}: the input(s), and how to read the value back.
function build(schema, label) {
  if (isOptional(schema)) {
    const inner = build(schema.anyOf.find((s) => s.type !== "null"), label);
    const toggle = el("input", { type: "checkbox", "aria-label": `${label} is set` });
    const holder = el("div", { hidden: true }, inner.node);
    toggle.addEventListener("change", () => { holder.hidden = !toggle.checked; });
    return { node: el("div", {}, el("label", {}, toggle, `${label} (optional)`), holder),
             get: () => (toggle.checked ? inner.get() : null) };
  }
  if (schema.enum) {
    const select = el("select", { name: label }, schema.enum.map((m) => el("option", { value: m }, m)));
    return { node: el("label", {}, `${label} (${schema.title || "enum"})`, select), get: () => select.value };
  }
  if (schema.anyOf && schema.description && schema.description.startsWith("seconds")) {  // a duration
    const input = el("input", { name: label, placeholder: "250ms, 2s or seconds", value: "1s" });
    return { node: el("label", {}, `${label} (duration)`, input),
             get: () => (input.value.trim() !== "" && !isNaN(Number(input.value)) ? Number(input.value) : input.value.trim()) };
  }
  switch (schema.type) {
    case "object": {
      if (schema.properties) {
        const parts = Object.entries(schema.properties).map(([k, s]) => [k, build(s, k)]);
        return { node: el("fieldset", {}, el("legend", {}, label), parts.map(([, p]) => p.node)),
                 get: () => Object.fromEntries(parts.map(([k, p]) => [k, p.get()])) };
      }
      if (schema.additionalProperties) return mapBuilder(schema.additionalProperties, label);
      return jsonBuilder(label);
    }
    case "array": return listBuilder(schema.items || {}, label);
    case "boolean": {
      const box = el("input", { type: "checkbox", name: label });
      return { node: el("label", {}, box, label), get: () => box.checked };
    }
    case "integer": case "number": {
      const input = el("input", { type: "number", step: schema.type === "integer" ? "1" : "any", name: label, value: "0" });
      return { node: el("label", {}, `${label} (${schema.type === "integer" ? "int" : "float"})`, input),
               get: () => (input.value === "" ? null : Number(input.value)) };
    }
    case "string": {
      const input = el("input", { name: label });
      return { node: el("label", {}, `${label} (str)`, input), get: () => input.value };
    }
    default: return jsonBuilder(label);
  }
}

function listBuilder(itemSchema, label) {
  const items = [];
  const list = el("div", { class: "list" });
  const add = el("button", { type: "button" }, `+ ${label} item`);
  add.addEventListener("click", () => {
    const part = build(itemSchema, `${label}[${items.length}]`);
    const remove = el("button", { type: "button", "aria-label": "remove" }, "×");
    const row = el("div", { class: "item" }, part.node, remove);
    items.push(part);
    remove.addEventListener("click", () => { items.splice(items.indexOf(part), 1); row.remove(); });
    list.append(row);
  });
  return { node: el("fieldset", {}, el("legend", {}, `${label} (list)`), list, add), get: () => items.map((p) => p.get()) };
}

function mapBuilder(valueSchema, label) {
  const entries = [];
  const list = el("div", { class: "list" });
  const add = el("button", { type: "button" }, `+ ${label} entry`);
  add.addEventListener("click", () => {
    const key = el("input", { placeholder: "key", "aria-label": "key" });
    const part = build(valueSchema, "value");
    const row = el("div", { class: "item" }, key, part.node);
    entries.push([key, part]);
    list.append(row);
  });
  return { node: el("fieldset", {}, el("legend", {}, `${label} (map)`), list, add),
           get: () => Object.fromEntries(entries.map(([k, p]) => [k.value, p.get()])) };
}

function jsonBuilder(label) {
  const area = el("textarea", { name: label, rows: 2, placeholder: "JSON" });
  return { node: el("label", {}, `${label} (JSON)`, area),
           get: () => { if (area.value.trim() === "") return null; try { return JSON.parse(area.value); } catch (e) { return area.value; } } };
}

let currentForm = null;

function drawForm() {
  const type = $("signal-type").value;
  const schema = view.schemas[type];
  const fields = $("signal-fields");
  $("send-result").textContent = "";
  if (!schema || (schema.anyOf && schema.anyOf.some((s) => s.type === "null") && !isOptional(schema))) {
    currentForm = { get: () => null };
    fields.replaceChildren(el("p", { class: "empty" }, "This signal carries no data."));
    return;
  }
  currentForm = build(schema, "data");
  fields.replaceChildren(currentForm.node);
}

async function send(event) {
  event.preventDefault();
  const type = $("signal-type").value;
  const signal = { specversion: "1.0", type, source: "/dashboard" };
  const data = currentForm ? currentForm.get() : null;
  if (data !== null) signal.data = data;
  const result = await api("POST", "/signals", signal);
  const out = $("send-result");
  if (result.status === 202) {
    out.className = "ok";
    out.textContent = `accepted: ${result.body.id}`;
  } else {
    out.className = "bad";
    out.textContent = `refused (${result.status}): ${(result.body && result.body.error) || "no reason given"}`;
  }
}

// --- start ------------------------------------------------------------------------------------

async function start() {
  const [state, schema] = await Promise.all([api("GET", "/api/state"), api("GET", "/api/schema")]);
  if (!state.ok) { $("health").textContent = `cannot read the cell (${state.status})`; return; }
  const s = state.body;
  document.title = `${s.title} · bbflow`;
  $("title").textContent = s.title;
  $("legend").replaceChildren(el("span", { class: "dim" }, "steps:"), ...LEGEND.map(([state, label]) =>
    el("span", { class: `step ${state}` }, `${MARKS[state]} ${label}`)));
  load(s);
  view.schemas = schema.ok ? schema.body.signals : {};
  const types = Object.keys(view.schemas).sort();
  $("signal-type").replaceChildren(...types.map((t) => el("option", { value: t }, t)));
  $("signal-type").addEventListener("change", drawForm);
  $("send").addEventListener("submit", send);
  drawForm();
  connect(s.last_event);
  setInterval(() => scheduleRefresh(0), 5000);
  drawClock();
  setInterval(drawClock, 1000);
}

start();
