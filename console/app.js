// The web console: plain JS, no build step. Calls the API on the same origin with the key
// pasted by the user (kept in sessionStorage, i.e. for this tab only).

const $ = (selector) => document.querySelector(selector);
const KEY_STORAGE = "mcj-api-key";
const state = { key: sessionStorage.getItem(KEY_STORAGE) ?? "", selectedJob: undefined, timer: undefined };

/** Creates an element; children are nodes or text (never parsed as HTML). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

class HttpError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Where the API lives: the console is served at <api>/console/, under any stage prefix. */
const API_ROOT = location.pathname.replace(/\/console\/.*$/, "");

async function api(path, { method = "GET", body: payload } = {}) {
  const headers = { authorization: `Bearer ${state.key}` };
  if (payload !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${API_ROOT}${path}`, {
    method,
    headers,
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  const body = await response.json().catch(() => undefined);
  if (!response.ok) throw new HttpError(response.status, body);
  return body;
}

const say = (text) => {
  $("#status-line").textContent = text;
};
const finished = (job) => ["COMPLETED", "FAILED", "CANCELED", "EXPIRED"].includes(job.status);
const percent = (job) =>
  job.totalItems === 0 ? 100 : Math.floor(((job.completedItems + job.failedItems) / job.totalItems) * 100);

function progressBar(job) {
  const total = Math.max(1, job.totalItems);
  return h(
    "span",
    { class: "progress", "data-testid": "progress" },
    h(
      "span",
      { class: "bar" },
      h("span", { class: "ok", style: `width:${(job.completedItems / total) * 100}%` }),
      h("span", { class: "bad", style: `width:${(job.failedItems / total) * 100}%` }),
    ),
    h("span", { class: "pct", "data-testid": "percent" }, `${percent(job)}%`),
  );
}

// ---- jobs

async function refreshJobs() {
  try {
    const page = await api("/v1/metric/collection-jobs?limit=20");
    const rows = page.data.map((job) =>
      h(
        "tr",
        {
          class: `job${job.id === state.selectedJob ? " selected" : ""}`,
          "data-job-id": job.id,
          onclick: () => openJob(job.id),
        },
        h("td", {}, h("code", {}, job.id.slice(0, 8))),
        h("td", {}, h("span", { class: `badge ${job.status}` }, job.status)),
        h("td", {}, progressBar(job)),
        h(
          "td",
          {},
          `${job.completedItems + job.failedItems}/${job.totalItems}`,
          job.failedItems ? ` (${job.failedItems} failed)` : "",
        ),
        h("td", {}, new Date(job.createdAt).toLocaleString()),
      ),
    );
    $("#jobs tbody").replaceChildren(
      ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No jobs yet"))]),
    );
    say(`Connected · ${page.data.length} recent jobs`);
    const running = page.data.some((job) => !finished(job));
    // Finished jobs feed the analytics: pick up metric names that were not there at connect.
    if (!running && $("#chart-metric").options.length === 0) loadChartMetrics();
    schedule(running ? 1000 : 5000);
  } catch (error) {
    if (error.status === 401) {
      say("That API key was refused (401).");
      return disconnect(false);
    }
    say(`Could not load jobs: ${error.message}`);
    schedule(5000);
  }
}

function schedule(ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => {
    refreshJobs();
    if (state.selectedJob) refreshJobHeader(state.selectedJob);
  }, ms);
}

async function refreshJobHeader(jobId) {
  const { data: job } = await api(`/v1/metric/collection-jobs/${encodeURIComponent(jobId)}`);
  $("#job-id").textContent = job.id;
  const badge = $("#job-status");
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  $("#job-progress").replaceChildren(progressBar(job));
  const cost = job.estimatedCostUsd === undefined ? "" : ` · est. cost $${job.estimatedCostUsd.toFixed(4)}`;
  $("#job-meta").textContent =
    `${job.completedItems} completed, ${job.failedItems} failed of ${job.totalItems} · ${job.callCount} calls × ${job.metrics.length} metrics${cost}`;
  return job;
}

async function openJob(jobId) {
  state.selectedJob = jobId;
  for (const row of document.querySelectorAll("tr.job")) row.classList.toggle("selected", row.dataset.jobId === jobId);
  $("#job-detail").hidden = false;
  $("#transcript-section").hidden = true;
  const job = await refreshJobHeader(jobId);
  const groups = new Map();
  let after;
  do {
    // Every row, failed ones too: the console shows why an item has no value.
    const query = new URLSearchParams({ status: "all", limit: "1000", ...(after ? { after } : {}) });
    const page = await api(`/v1/metric/collection-jobs/${encodeURIComponent(jobId)}/metric-values?${query}`);
    for (const group of page.data) {
      const known = groups.get(group.metricDefinitionId);
      if (known) known.values.push(...group.values);
      else groups.set(group.metricDefinitionId, { ...group, values: [...group.values] });
    }
    after = page.pagination.hasMore ? page.pagination.nextCursor : undefined;
  } while (after);
  const sections = [...groups.values()].map((group) =>
    h(
      "div",
      { class: "metric", "data-metric": group.slug },
      h(
        "h3",
        {},
        `${group.name} `,
        h("code", {}, group.metricId),
        group.type ? h("span", { class: "muted" }, ` · ${group.type}`) : "",
        h("span", { class: "muted agreement", "data-testid": "agreement" }),
      ),
      group.values.length === 0
        ? h("p", { class: "muted" }, finished(job) ? "No values." : "No values yet…")
        : h(
            "table",
            { class: "values" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Call", "Status", "Value", "Confidence", "Reasoning", "", "Review"].map((t) => h("th", {}, t)),
              ),
            ),
            h(
              "tbody",
              {},
              group.values.map((value) => valueRow(value, group)),
            ),
          ),
    ),
  );
  $("#values").replaceChildren(...sections);
  for (const group of groups.values()) showAgreement(group);
}

/** How often the judge matched reviewers on this metric, beside its name. */
async function showAgreement(group) {
  const target = document.querySelector(`.metric[data-metric="${CSS.escape(group.slug)}"] [data-testid="agreement"]`);
  if (!target) return;
  try {
    const { data } = await api(`/v1/metric/definitions/${encodeURIComponent(group.metricDefinitionId)}/agreement`);
    const error = typeof data.meanAbsoluteError === "number" ? `, mean error ${data.meanAbsoluteError.toFixed(2)}` : "";
    target.textContent =
      data.compared === 0 ? " · no reviews yet" : ` · ${data.agreed} of ${data.compared} reviewed agree${error}`;
  } catch {
    target.textContent = "";
  }
}

/** The review cell: what a person said, or a field to confirm or correct the value. */
function reviewCell(value, group) {
  const cell = h("td", { "data-testid": "review" });
  const show = (reviewed) => {
    const shown = Array.isArray(reviewed.reviewedValue) ? reviewed.reviewedValue.join(", ") : reviewed.reviewedValue;
    cell.replaceChildren(h("span", { class: "reviewed" }, `reviewed: ${shown}`));
  };
  const input = h("input", { type: "text", size: 8, placeholder: "value", "aria-label": "Reviewed value" });
  const save = async () => {
    const text = input.value.trim();
    if (text === "") return;
    let reviewedValue = text;
    try {
      reviewedValue = JSON.parse(text); // true, 3, ["a","b"]; a bare word stays a label or text.
    } catch {}
    const ids = [value.jobId, value.callId, value.metricDefinitionId].map(encodeURIComponent);
    try {
      const { data } = await api(`/v1/metric/collection-jobs/${ids[0]}/metric-values/${ids[1]}/${ids[2]}/review`, {
        method: "PUT",
        body: { reviewedValue },
      });
      show(data);
      showAgreement(group);
    } catch (error) {
      say(`Review not saved: ${error.message}`);
    }
  };
  if (value.reviewedValue !== undefined) show(value);
  else {
    cell.append(
      input,
      h("button", { type: "button", class: "link", "data-testid": "save-review", onclick: save }, "save"),
    );
  }
  return cell;
}

function formatValue(value, group) {
  if (value.value === undefined) return "—";
  if (Array.isArray(value.value)) return value.value.join(", ");
  const unit = group.unit?.symbol ? ` ${group.unit.symbol}` : "";
  return `${value.value}${unit}`;
}

function valueRow(value, group) {
  const segment = value.segment ?? value.fromSegment;
  return h(
    "tr",
    { class: "value", "data-call-id": value.callId },
    h("td", {}, h("code", {}, value.callId.slice(0, 8))),
    h("td", {}, h("span", { class: `badge ${value.captureStatus}` }, value.captureStatus)),
    h("td", { "data-testid": "value" }, formatValue(value, group)),
    h("td", {}, value.confidence === undefined ? "" : value.confidence.toFixed(2)),
    h("td", { class: "reasoning" }, value.valueReasoning ?? value.errorMessage ?? ""),
    h(
      "td",
      {},
      h(
        "button",
        { type: "button", class: "link", "data-testid": "show-transcript", onclick: () => showTranscript(value) },
        segment ? "segment" : "transcript",
      ),
    ),
    reviewCell(value, group),
  );
}

/** True when a transcript segment is the one (or within the range) a value points at. */
function referenced(segment, value) {
  if (value.segment) {
    return segment.startOffsetMs === value.segment.startOffsetMs && segment.text === value.segment.text;
  }
  if (value.fromSegment && value.toSegment) {
    return (
      segment.startOffsetMs >= value.fromSegment.startOffsetMs && segment.startOffsetMs <= value.toSegment.startOffsetMs
    );
  }
  return false;
}

async function showTranscript(value) {
  const { data: call } = await api(`/v1/call/${encodeURIComponent(value.callId)}`);
  $("#transcript-section").hidden = false;
  $("#transcript-call").textContent = call.id;
  const items = call.transcript.map((segment) =>
    h(
      "li",
      { class: referenced(segment, value) ? "highlight" : undefined },
      h("span", { class: "offset" }, `${(segment.startOffsetMs / 1000).toFixed(1)}s`),
      h("span", { class: "role" }, segment.role),
      segment.text,
    ),
  );
  $("#transcript").replaceChildren(...items);
  document.querySelector("#transcript li.highlight")?.scrollIntoView({ block: "center" });
}

// ---- metric definitions: versions, archive

/** What a version asks: the judge's prompt, or the built-in computation. */
const definitionSummary = (definition) =>
  definition.llmPrompt ?? (definition.builtIn ? `built in: ${definition.builtIn.kind}` : "");

async function refreshDefinitions() {
  const archived = $("#show-archived").checked;
  try {
    const { data } = await api(`/v1/metric/definitions?limit=100&archived=${archived}`);
    const rows = data.map((definition) =>
      h(
        "tr",
        { class: "definition", "data-slug": definition.slug },
        h("td", {}, h("code", {}, definition.slug)),
        h("td", {}, definition.name),
        h("td", {}, definition.outputType),
        h("td", { "data-testid": "version" }, `v${definition.version}`),
        h("td", {}, new Date(definition.updatedAt).toLocaleString()),
        h(
          "td",
          {},
          h(
            "button",
            { type: "button", class: "link", "data-testid": "show-versions", onclick: () => showVersions(definition) },
            "versions",
          ),
          " ",
          archived
            ? h(
                "button",
                { type: "button", "data-testid": "unarchive", onclick: () => setArchived(definition, false) },
                "Unarchive",
              )
            : h(
                "button",
                { type: "button", "data-testid": "archive", onclick: () => setArchived(definition, true) },
                "Archive",
              ),
        ),
      ),
    );
    const none = archived ? "No archived definitions" : "No metric definitions yet";
    $("#metric-definitions tbody").replaceChildren(
      ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, none))]),
    );
  } catch (error) {
    // A refused key is reported (and forgotten) by the jobs' refresh.
    if (error.status !== 401) say(`Could not load metric definitions: ${error.message}`);
  }
}

async function showVersions(definition) {
  try {
    const { data } = await api(`/v1/metric/definitions/${encodeURIComponent(definition.id)}/versions?limit=100`);
    $("#metric-versions").replaceChildren(
      h("h3", {}, `Versions of `, h("code", {}, definition.slug)),
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Version", "Created", "Asks"].map((t) => h("th", {}, t)),
          ),
        ),
        h(
          "tbody",
          {},
          data.map((version) =>
            h(
              "tr",
              { class: "version", "data-version": version.version },
              h("td", {}, `v${version.version}`),
              h("td", {}, new Date(version.updatedAt).toLocaleString()),
              h("td", { class: "reasoning" }, definitionSummary(version)),
            ),
          ),
        ),
      ),
    );
  } catch (error) {
    say(`Could not load the versions: ${error.message}`);
  }
}

/** Archived definitions leave new jobs; running ones go on (the API says so on each route). */
async function setArchived(definition, archive) {
  const action = archive ? "archive" : "unarchive";
  try {
    await api(`/v1/metric/definitions/${encodeURIComponent(definition.id)}/${action}`, { method: "POST" });
    say(`${definition.slug} ${archive ? "archived: new jobs refuse it" : "is back"}`);
    await refreshDefinitions();
  } catch (error) {
    say(`Could not ${action} ${definition.slug}: ${error.message}`);
  }
}

// ---- a call by the id the client gave it

async function findCall(event) {
  event.preventDefault();
  const externalId = $("#external-id").value.trim();
  const result = (text) => {
    $("#call-lookup-result").textContent = text;
  };
  try {
    const { data } = await api(`/v1/call?${new URLSearchParams({ externalId })}`);
    if (data.length === 0) return result(`No call has the external id "${externalId}".`);
    result(`Call ${data[0].id}: its transcript is below.`);
    await showTranscript({ callId: data[0].id });
  } catch (error) {
    result(`Could not look the call up: ${error.message}`);
  }
}

// ---- chart (analytics API; absent → a note instead)

async function loadChartMetrics() {
  try {
    const { data: names } = await api("/v1/custom-metrics/names");
    $("#chart-metric").replaceChildren(...names.map((name) => h("option", { value: name }, name)));
    if (names.length === 0) return $("#chart").replaceChildren(h("p", { class: "muted" }, "No analytics data yet."));
    await drawChart();
  } catch (error) {
    const note = error.status === 404 ? "The analytics API is not available on this deployment." : error.message;
    $("#chart").replaceChildren(h("p", { class: "muted", "data-testid": "chart-unavailable" }, note));
  }
}

async function drawChart() {
  const metricName = $("#chart-metric").value;
  if (!metricName) return;
  const days = Number($("#chart-days").value);
  const end = new Date();
  const start = new Date(end.getTime() - days * 86_400_000);
  const query = new URLSearchParams({
    metricName,
    startDate: start.toISOString(),
    endDate: end.toISOString(),
    step: days > 7 ? "1d" : "1h",
  });
  try {
    const { data } = await api(`/v1/custom-metrics/timeseries?${query}`);
    const points = new Map();
    for (const series of data.result) {
      for (const [at, value] of series.values)
        points.set(at, (points.get(at) ?? 0) + Number(value) / data.result.length);
    }
    const sorted = [...points].sort(([a], [b]) => a - b);
    if (sorted.length === 0) {
      return $("#chart").replaceChildren(h("p", { class: "muted" }, `No values of ${metricName} in this range.`));
    }
    $("#chart").replaceChildren(lineChart(sorted, start.getTime() / 1000, end.getTime() / 1000));
  } catch (error) {
    const note = error.status === 404 ? "The analytics API is not available on this deployment." : error.message;
    $("#chart").replaceChildren(h("p", { class: "muted", "data-testid": "chart-unavailable" }, note));
  }
}

function lineChart(points, from, to) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const [width, height, pad] = [800, 220, 36];
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("data-testid", "chart-svg");
  const values = points.map(([, v]) => v);
  const min = Math.min(0, ...values);
  const max = Math.max(...values, min + 1);
  const x = (t) => pad + ((t - from) / Math.max(1, to - from)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - min) / (max - min)) * (height - 2 * pad);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  add("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#adb5bd" });
  add("line", { x1: pad, y1: pad, x2: pad, y2: height - pad, stroke: "#adb5bd" });
  add("text", { x: 4, y: pad, "font-size": 11, fill: "#495061" }, max.toFixed(1));
  add("text", { x: 4, y: height - pad, "font-size": 11, fill: "#495061" }, min.toFixed(1));
  add("text", { x: pad, y: height - 10, "font-size": 11, fill: "#495061" }, new Date(from * 1000).toLocaleDateString());
  add(
    "text",
    { x: width - pad, y: height - 10, "font-size": 11, fill: "#495061", "text-anchor": "end" },
    new Date(to * 1000).toLocaleDateString(),
  );
  add("polyline", {
    points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
    fill: "none",
    stroke: "#1c5fd4",
    "stroke-width": 2,
  });
  for (const [t, v] of points) add("circle", { cx: x(t), cy: y(v), r: 3, fill: "#1c5fd4" });
  return svg;
}

// ---- integrations (admin keys only): what each platform delivered, and why deliveries failed

const when = (at) => (at ? new Date(at).toLocaleString() : "");

async function refreshIntegrations(me) {
  $("#integrations-section").hidden = me.role !== "admin";
  if (me.role !== "admin") return;
  const { data } = await api("/v1/integrations?limit=100");
  const rows = data.map((integration) =>
    h(
      "tr",
      { class: "integration", "data-integration-id": integration.id },
      h("td", {}, integration.name),
      h("td", {}, integration.provider),
      h("td", {}, h("code", {}, integration.webhookUrl)),
      h(
        "td",
        { "data-testid": "received" },
        `${integration.receivedCount ?? 0}`,
        h("br"),
        when(integration.lastReceivedAt),
      ),
      h(
        "td",
        { "data-testid": "failed", class: integration.failedCount ? "bad" : undefined },
        `${integration.failedCount ?? 0}`,
        integration.lastError ? h("br") : "",
        integration.lastError ? `${when(integration.lastFailedAt)}: ${integration.lastError}` : "",
      ),
    ),
  );
  $("#integrations tbody").replaceChildren(
    ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No integrations yet"))]),
  );
}

// ---- API keys (admin keys only)

async function refreshKeys() {
  const me = (await api("/v1/me")).data;
  refreshIntegrations(me).catch((error) => say(`Could not load integrations: ${error.message}`));
  $("#keys-section").hidden = me.role !== "admin";
  if (me.role !== "admin") return;
  const { data } = await api("/v1/api-keys?limit=100");
  const rows = data.map((key) =>
    h(
      "tr",
      { class: "api-key", "data-key-id": key.id },
      h("td", {}, h("code", {}, key.id)),
      h("td", {}, key.name),
      h("td", {}, key.role),
      h("td", {}, new Date(key.createdAt).toLocaleString()),
      h(
        "td",
        {},
        key.revokedAt
          ? `revoked ${new Date(key.revokedAt).toLocaleString()}`
          : key.id === me.keyId
            ? "this key"
            : h("button", { type: "button", class: "revoke", onclick: () => revokeKey(key) }, "Revoke"),
      ),
    ),
  );
  $("#api-keys tbody").replaceChildren(...rows);
}

async function createKey(event) {
  event.preventDefault();
  const name = $("#new-key-name").value.trim();
  const role = $("#new-key-role").value;
  try {
    const { data } = await api("/v1/api-keys", { method: "POST", body: { name, role } });
    $("#new-key-secret").replaceChildren(
      "Copy the new key now; it is not shown again: ",
      h("code", { "data-testid": "new-key" }, data.apiKey),
    );
    $("#new-key-name").value = "";
    await refreshKeys();
  } catch (error) {
    say(`Could not create the key: ${error.message}`);
  }
}

async function revokeKey(key) {
  if (!confirm(`Revoke the key "${key.name}" (${key.id})? Requests with it will be refused.`)) return;
  try {
    await api(`/v1/api-keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
    await refreshKeys();
  } catch (error) {
    say(`Could not revoke the key: ${error.message}`);
  }
}

// ---- key handling

function connect(key) {
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("#main").hidden = false;
  $("#disconnect").hidden = false;
  $("#api-key").value = "";
  $("#api-key").placeholder = "connected";
  say("Connecting…");
  refreshJobs();
  refreshDefinitions();
  loadChartMetrics();
  refreshKeys().catch(() => {});
}

function disconnect(clearMessage = true) {
  clearTimeout(state.timer);
  state.key = "";
  state.selectedJob = undefined;
  sessionStorage.removeItem(KEY_STORAGE);
  $("#main").hidden = true;
  $("#keys-section").hidden = true;
  $("#integrations-section").hidden = true;
  $("#new-key-secret").replaceChildren();
  $("#disconnect").hidden = true;
  $("#api-key").placeholder = "mcj_…";
  if (clearMessage) say("");
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#api-key").value.trim();
  if (key) connect(key);
});
$("#disconnect").addEventListener("click", () => disconnect());
$("#chart-metric").addEventListener("change", drawChart);
$("#new-key-form").addEventListener("submit", createKey);
$("#chart-days").addEventListener("change", drawChart);
$("#show-archived").addEventListener("change", refreshDefinitions);
$("#call-lookup-form").addEventListener("submit", findCall);
if (state.key) connect(state.key);
