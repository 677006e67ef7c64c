// Vigil's console: plain browser JavaScript over the REST API and its WebSockets, no build
// step. Every page is a view of the hash (#/, #/events/7, #/cameras, #/dlq, #/breakers,
// #/jobs); every action asks for the API key once per browser tab (sessionStorage) and shows
// the API's own error text when it is refused.
"use strict";

const KEY = "vigil.apiKey";
const ASKED = "vigil.apiKeyAsked";
const view = () => document.getElementById("view");
let leaving = []; // what the current view must close when another replaces it

// -- building the page (text always as text: camera ids and model answers are data) --------

function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function show(...children) {
  view().replaceChildren(...children);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function risk(level, score) {
  return h("span", { class: `risk ${level}` }, score === undefined ? level : `${level} ${score}`);
}

function table(headings, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headings.map((title) => h("th", {}, title)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))),
    ),
  );
}

// -- notices ---------------------------------------------------------------------------------

function notify(text, kind = "error") {
  const notice = document.getElementById("notice");
  notice.textContent = text;
  notice.className = kind;
  notice.hidden = false;
}

function clearNotice() {
  const notice = document.getElementById("notice");
  notice.hidden = true;
  notice.textContent = "";
}

// -- the API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

async function errorOf(reply) {
  let detail = reply.statusText;
  try {
    const body = await reply.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch (_) {
    // not JSON: the status text says it
  }
  return new ApiError(reply.status, detail);
}

async function read(path) {
  const reply = await fetch(path, { headers: { Accept: "application/json" } });
  if (!reply.ok) throw await errorOf(reply);
  return reply.json();
}

function askForKey() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  input.value = sessionStorage.getItem(KEY) || "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        sessionStorage.setItem(ASKED, "1");
        if (dialog.returnValue === "save" && input.value.trim()) {
          sessionStorage.setItem(KEY, input.value.trim());
        }
        resolve(sessionStorage.getItem(KEY));
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}

// An action: asks for the key the first time, sends it, and says what the API answered.
async function act(method, path, done) {
  if (!sessionStorage.getItem(KEY) && !sessionStorage.getItem(ASKED)) await askForKey();
  const key = sessionStorage.getItem(KEY);
  const headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  try {
    const reply = await fetch(path, { method, headers });
    if (!reply.ok) throw await errorOf(reply);
    const body = await reply.json();
    notify(body.message || `${method} ${path}: ${body.status || "done"}`, "ok");
    if (done) await done(body);
  } catch (error) {
    const hint = error.status === 401 || error.status === 403 ? " (set the API key)" : "";
    notify(`Refused: ${error.message}${hint}`);
  }
}

function live(path, onMessage, statusElement) {
  let socket;
  let closed = false;
  let wait = 500;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.onopen = () => {
      wait = 500;
      statusElement.textContent = "live";
      statusElement.dataset.state = "live";
    };
    socket.onmessage = (message) => onMessage(JSON.parse(message.data));
    socket.onclose = () => {
      if (closed) return;
      statusElement.textContent = "reconnecting…";
      statusElement.dataset.state = "reconnecting";
      setTimeout(open, wait);
      wait = Math.min(wait * 2, 10000);
    };
  };
  open();
  leaving.push(() => {
    closed = true;
    socket.close();
  });
}

// -- the timeline ----------------------------------------------------------------------------

function eventCard(event) {
  const picture = event.thumbnail_url
    ? h("img", { src: event.thumbnail_url, alt: `camera ${event.camera_id}`, loading: "lazy" })
    : h("div", { class: "no-image" });
  return h(
    "li",
    { dataset: { item: event.id } },
    h(
      "a",
      { class: "event", href: `#/events/${event.id}` },
      picture,
      h(
        "div",
        {},
        h("div", {}, risk(event.risk_level, event.risk_score), " ", h("strong", {}, event.camera_id)),
        h("div", { class: "meta" }, `${when(event.started_at)} · ${event.detection_count} detections`),
        h("p", { class: "summary" }, event.summary),
      ),
    ),
  );
}

// A list kept current: the first page read over REST, then each item the WebSocket pushes
// put in its place (a new one first). `element(item)` carries `data-item` = `key(item)`.
async function liveList({ list, status, socket, type, page, items, key, element, empty }) {
  const shownAs = (item) => list.querySelector(`[data-item="${CSS.escape(String(key(item)))}"]`);
  const place = (item) => {
    for (const note of list.querySelectorAll(".empty")) note.remove();
    const shown = shownAs(item);
    if (shown) shown.replaceWith(element(item));
    else list.prepend(element(item));
  };
  live(socket, (message) => message.type === type && place(message[type]), status);
  const first = (await read(page))[items];
  for (const item of first.slice().reverse()) if (!shownAs(item)) place(item);
  if (!list.children.length) list.append(empty);
}

async function timeline() {
  const status = h("span", { class: "status", id: "live-status" }, "connecting…");
  const list = h("ul", { class: "events", id: "events" });
  show(h("h1", {}, "Security events ", status), list);
  await liveList({
    list,
    status,
    socket: "/ws/events",
    type: "event",
    page: "/api/events?limit=50",
    items: "events",
    key: (event) => event.id,
    element: eventCard,
    empty: h("li", { class: "empty" }, "No events yet: they appear here as they happen."),
  });
}

// -- one event -------------------------------------------------------------------------------

function box(b) {
  const at = (v) => Math.round(v);
  return `(${at(b.x1)}, ${at(b.y1)}) – (${at(b.x2)}, ${at(b.y2)})`;
}

function imagesOf(detections) {
  const byImage = new Map();
  for (const detection of detections) {
    if (!byImage.has(detection.image_id)) byImage.set(detection.image_id, []);
    byImage.get(detection.image_id).push(detection);
  }
  return [...byImage.values()].map((found) =>
    h(
      "figure",
      {},
      h("img", {
        class: "annotated",
        src: found[0].annotated_image_url,
        alt: `${found.length} detections on ${found[0].image_id}`,
      }),
      h("figcaption", {}, `${found[0].image_id} · ${found.map((d) => d.label).join(", ")}`),
    ),
  );
}

async function eventPage(id) {
  const event = await read(`/api/events/${encodeURIComponent(id)}`);
  const [enrichments, audit] = await Promise.all([
    read(`/api/enrichment/event/${event.id}`).catch(() => ({ enrichments: [] })),
    read(`/api/ai-audit/events/${event.id}`).catch((error) =>
      error.status === 404 ? null : Promise.reject(error),
    ),
  ]);
  const auditPart = audit && audit.audit_id !== null
    ? [
        h("p", {}, `Status ${audit.status}`, audit.reason ? ` · ${audit.reason}` : ""),
        audit.quality_scores
          ? table(
              ["Score", "Value"],
              Object.entries(audit.quality_scores).map(([name, value]) => [name, value ?? ""]),
            )
          : null,
        (audit.prompt_suggestions || []).length
          ? h("ul", {}, audit.prompt_suggestions.map((s) => h("li", {}, typeof s === "string" ? s : JSON.stringify(s))))
          : null,
      ]
    : [h("p", { class: "empty" }, "Not audited yet.")];
  show(
    h("p", {}, h("a", { href: "#/" }, "← Timeline")),
    h("h1", {}, risk(event.risk_level, event.risk_score), ` Event ${event.id} · ${event.camera_id}`),
    h("p", { class: "meta" }, `${when(event.started_at)} – ${when(event.ended_at)} · batch ${event.batch_id}`),
    h("p", { id: "summary" }, event.summary),
    h("p", { class: "meta" }, event.reasoning),
    h("h2", {}, "Images"),
    h("div", { class: "images", id: "images" }, imagesOf(event.detections)),
    h("h2", {}, `Detections (${event.detections.length})`),
    h(
      "div",
      { id: "detections" },
      table(
        ["Label", "Confidence", "Box", "Model", "Detected"],
        event.detections.map((d) => [
          d.label,
          d.confidence.toFixed(2),
          box(d.bbox),
          `${d.model_name} ${d.model_version}`,
          when(d.detected_at),
        ]),
      ),
    ),
    h("h2", {}, `Enrichments (${enrichments.enrichments.length})`),
    table(
      ["Detection", "Description", "Confidence", "Model"],
      enrichments.enrichments.map((e) => [
        e.detection_id,
        e.description,
        e.confidence === null ? "" : e.confidence.toFixed(2),
        e.model_name,
      ]),
    ),
    h("h2", {}, `Analyses (${event.analyses.length})`),
    table(
      ["Version", "Risk", "Prompt version", "When", "Summary"],
      event.analyses.map((a) => [
        a.analysis_version,
        risk(a.risk_level, a.risk_score),
        a.prompt_version,
        when(a.created_at),
        a.summary,
      ]),
    ),
    h("h2", {}, "Audit"),
    ...auditPart,
  );
}

// -- cameras ---------------------------------------------------------------------------------

async function cameras() {
  const active = await read("/api/batches/active");
  const refresh = () => route();
  show(
    h("h1", {}, "Cameras with an open batch"),
    active.batches.length
      ? h(
          "div",
          { class: "cards" },
          active.batches.map((batch) =>
            h(
              "div",
              { class: "card" },
              h("strong", {}, batch.camera_id),
              h("div", { class: "count" }, batch.detection_count),
              h("div", { class: "meta" }, `detections · open ${Math.round(batch.age_seconds)} s`),
              h(
                "div",
                { class: "actions" },
                h(
                  "button",
                  { type: "button", onclick: () => act("POST", `/api/batches/${encodeURIComponent(batch.batch_id)}/flush`, refresh) },
                  "Close batch now",
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "empty" }, "No camera has an open batch."),
  );
}

// -- dead letters ----------------------------------------------------------------------------

async function deadLetters() {
  const stats = await read("/api/dlq/stats");
  const queues = Object.keys(stats)
    .filter((name) => name.endsWith("_queue_count"))
    .map((name) => name.replace(/_count$/, ""));
  const letters = h("div", { id: "letters" });
  const refresh = () => route();
  const cards = queues.map((queue) => {
    const name = `dlq:${queue}`;
    const path = encodeURIComponent(name);
    return h(
      "div",
      { class: "card", dataset: { queue: name } },
      h("strong", {}, queue.replace(/_queue$/, "")),
      h("div", { class: "count", dataset: { count: name } }, stats[`${queue}_count`]),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => showLetters(name, letters) }, "Letters"),
        h("button", { type: "button", class: "requeue", onclick: () => act("POST", `/api/dlq/requeue/${path}`, refresh) }, "Requeue oldest"),
        h("button", { type: "button", onclick: () => act("POST", `/api/dlq/requeue-all/${path}`, refresh) }, "Requeue all"),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: () => confirm(`Delete every letter of ${name}?`) && act("DELETE", `/api/dlq/${path}`, refresh),
          },
          "Clear",
        ),
      ),
    );
  });
  show(h("h1", {}, `Dead letters (${stats.total_count})`), h("div", { class: "cards" }, cards), letters);
}

async function showLetters(queue, into) {
  const page = await read(`/api/dlq/jobs/${encodeURIComponent(queue)}?limit=50`);
  into.replaceChildren(
    h("h2", {}, `${queue} (${page.count})`),
    table(
      ["Camera", "Error", "Attempts", "Last failed", "Source"],
      page.jobs.map((letter) => [
        letter.camera_id ?? "",
        `${letter.error_type}: ${letter.error}`,
        letter.attempt_count,
        when(letter.last_failed_at),
        letter.source_topic ? `${letter.source_topic}[${letter.source_partition}]@${letter.source_offset}` : "",
      ]),
    ),
  );
}

// -- circuit breakers ------------------------------------------------------------------------

async function breakers() {
  const answer = await read("/api/system/circuit-breakers");
  const refresh = () => route();
  show(
    h("h1", {}, `Circuit breakers (${answer.open_count} open)`),
    table(
      ["Model", "State", "Failures", "Calls", ""],
      Object.values(answer.circuit_breakers).map((breaker) => [
        breaker.name,
        h("span", { dataset: { state: breaker.state } }, breaker.state),
        breaker.failure_count,
        breaker.total_calls,
        h(
          "button",
          { type: "button", onclick: () => act("POST", `/api/system/circuit-breakers/${encodeURIComponent(breaker.name)}/reset`, refresh) },
          "Reset",
        ),
      ]),
    ),
  );
}

// -- jobs ------------------------------------------------------------------------------------

function jobRow(job) {
  const path = `/api/jobs/${encodeURIComponent(job.job_id)}`;
  const going = job.status === "pending" || job.status === "running";
  return h(
    "tr",
    { dataset: { item: job.job_id } },
    h("td", {}, job.job_type),
    h("td", {}, job.status),
    h("td", {}, h("progress", { max: 100, value: job.progress }), ` ${job.progress} %`),
    h("td", {}, when(job.created_at)),
    h(
      "td",
      {},
      going ? h("button", { type: "button", onclick: () => act("POST", `${path}/cancel`) }, "Cancel") : null,
      " ",
      job.status === "running"
        ? h("button", { type: "button", class: "danger", onclick: () => act("POST", `${path}/abort`) }, "Abort")
        : null,
    ),
  );
}

async function jobs() {
  const status = h("span", { class: "status" }, "connecting…");
  const body = h("tbody", { id: "jobs" });
  show(
    h("h1", {}, "Jobs ", status),
    h(
      "div",
      { class: "table-wrap" },
      h("table", {}, h("thead", {}, h("tr", {}, ["Type", "Status", "Progress", "Created", ""].map((t) => h("th", {}, t)))), body),
    ),
  );
  await liveList({
    list: body,
    status,
    socket: "/ws/jobs",
    type: "job",
    page: "/api/jobs?limit=50",
    items: "jobs",
    key: (job) => job.job_id,
    element: jobRow,
    empty: h("tr", { class: "empty" }, h("td", { colspan: 5 }, "No jobs yet.")),
  });
}

// -- routing ---------------------------------------------------------------------------------

const VIEWS = [
  [/^#?\/?$/, "timeline", timeline],
  [/^#\/events\/(\d+)$/, "timeline", eventPage],
  [/^#\/cameras$/, "cameras", cameras],
  [/^#\/dlq$/, "dlq", deadLetters],
  [/^#\/breakers$/, "breakers", breakers],
  [/^#\/jobs$/, "jobs", jobs],
];

async function route() {
  for (const close of leaving) close();
  leaving = [];
  const hash = location.hash || "#/";
  for (const [pattern, tab, render] of VIEWS) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("nav a")) {
      link.classList.toggle("current", link.dataset.view === tab);
    }
    try {
      await render(...match.slice(1));
    } catch (error) {
      show(h("p", { class: "empty" }, "This page could not be loaded."));
      notify(`Could not load the page: ${error.message}`);
    }
    return;
  }
  show(h("p", { class: "empty" }, `No page ${hash}.`));
}

window.addEventListener("hashchange", () => {
  clearNotice();
  route();
});
window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-button").addEventListener("click", askForKey);
  route();
});
