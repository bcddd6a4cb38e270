// Live log: the last requests, then every finished request as it happens (server-sent events from
// /admin/v1/requests/stream), filterable by client, provider and status; errors highlighted.
import { ADMIN, admin, explain } from "./api.js";
import { fmtMs, fmtNumber, fmtTime, fmtUsd, h, replace } from "./dom.js";

const MAX_ROWS = 1000;
const STATUS = [["", "All"], ["ok", "Success (2xx)"], ["error", "Errors (4xx/5xx)"], ["429", "429 rate limited"], ["5", "5xx"]];

function isError(row) {
  return (row.status || 0) >= 400 || Boolean(row.error_code);
}

function matches(row, filter) {
  if (filter.client && row.client_id !== filter.client) return false;
  if (filter.provider && row.provider !== filter.provider) return false;
  if (filter.status === "ok") return !isError(row);
  if (filter.status === "error") return isError(row);
  if (filter.status === "429") return row.status === 429;
  if (filter.status === "5") return (row.status || 0) >= 500;
  return true;
}

// The parts of the token counts a provider reported apart: prompt-cache reads and writes, reasoning.
function tokenDetails(row) {
  const parts = [[row.cache_read_tokens, "cache read"], [row.cache_write_tokens, "cache write"], [row.reasoning_tokens, "reasoning"]]
    .filter(([n]) => n > 0).map(([n, what]) => `${fmtNumber(n)} ${what}`);
  return parts.length ? h("div", { class: "small muted", "data-testid": "token-details" }, parts.join(" · ")) : null;
}

function rowElement(row) {
  const flags = [row.stream ? "stream" : "", row.cache_hit ? "cache" : ""].filter(Boolean).join(" ");
  return h("tr", { class: isError(row) ? "row-error" : "", "data-request": row.request_id || "" },
    h("td", { class: "small" }, fmtTime(row.time)),
    h("td", {}, row.client_id || "–"), h("td", {}, row.provider || "–"), h("td", {}, row.model || "–"),
    h("td", {}, row.key_label || "–"),
    h("td", { class: "status" }, String(row.status ?? "–"), row.error_code ? h("div", { class: "small" }, row.error_code) : null),
    h("td", { class: "num" }, `${fmtNumber(row.tokens_in ?? 0)} / ${fmtNumber(row.tokens_out ?? 0)}`, tokenDetails(row)),
    h("td", { class: "num" }, fmtMs(row.latency_ms)), h("td", { class: "num" }, fmtMs(row.overhead_ms)),
    h("td", { class: "num" }, fmtUsd(row.cost)), h("td", { class: "small muted" }, flags));
}

function select(label, options, onchange) {
  return h("label", { class: "filter" }, label, h("select", { onchange }, options.map(([v, t]) => h("option", { value: v }, t))));
}

export function mountLog(page, { banner }) {
  const rows = [];
  const seen = new Set();
  const filter = { client: "", provider: "", status: "" };
  let paused = false;
  let source = null;
  const body = h("tbody");
  const live = h("span", { class: "badge badge-muted", "data-testid": "live-state" }, "connecting…");
  const clientSelect = h("select", { onchange: (e) => { filter.client = e.target.value; render(); }, "aria-label": "Client" });
  const providerSelect = h("select", { onchange: (e) => { filter.provider = e.target.value; render(); }, "aria-label": "Provider" });
  const pause = h("button", { type: "button", onclick: () => { paused = !paused; pause.textContent = paused ? "Resume" : "Pause"; render(); } }, "Pause");

  page.append(
    h("div", { class: "page-head" }, h("h1", {}, "Live log"), live),
    h("div", { class: "controls filters" },
      h("label", { class: "filter" }, "Client", clientSelect), h("label", { class: "filter" }, "Provider", providerSelect),
      select("Status", STATUS, (e) => { filter.status = e.target.value; render(); }), pause),
    h("div", { class: "table-wrap card" }, h("table", { class: "log" },
      h("thead", {}, h("tr", {}, ["Time", "Client", "Provider", "Model", "Key", "Status", "Tokens in/out", "Latency", "Overhead", "Cost", ""].map((t) => h("th", {}, t)))),
      body)));

  function fillOptions(sel, field, current) {
    const values = [...new Set(rows.map((r) => r[field]).filter(Boolean))].sort();
    replace(sel, h("option", { value: "" }, "All"), values.map((v) => h("option", { value: v, selected: v === current }, v)));
  }

  function render() {
    if (paused) return;
    fillOptions(clientSelect, "client_id", filter.client);
    fillOptions(providerSelect, "provider", filter.provider);
    const shown = rows.filter((r) => matches(r, filter));
    replace(body, shown.length ? shown.slice(0, 300).map(rowElement)
      : h("tr", {}, h("td", { colspan: 11, class: "empty" }, "No requests yet.")));
  }

  function add(row, atTop) {
    const id = row.request_id;
    if (id && seen.has(id)) return;
    if (id) seen.add(id);
    if (atTop) rows.unshift(row); else rows.push(row);
    while (rows.length > MAX_ROWS) { const old = rows.pop(); if (old.request_id) seen.delete(old.request_id); }
  }

  function connect() {
    source = new EventSource(ADMIN + "/requests/stream");
    source.onopen = () => { live.textContent = "live"; live.className = "badge badge-ok"; };
    source.onmessage = (event) => {
      try { add(JSON.parse(event.data), true); render(); } catch { /* a keep-alive or a partial line */ }
    };
    source.onerror = () => {
      live.textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…";
      live.className = "badge badge-warn";
      if (source.readyState === EventSource.CLOSED) window.dispatchEvent(new Event("gateway:signed-out"));
    };
  }

  admin.get("/requests/recent?limit=200")
    .then((data) => { for (const row of (data && data.requests) || []) add(row, false); render(); })
    .catch((err) => { banner("Recent requests: " + explain(err)); render(); });
  connect();
  return () => { if (source) source.close(); };
}
