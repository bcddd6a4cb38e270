// Overview: traffic, success, latency, overhead, tokens and cost over the last hour or day, by
// provider, model or client; the config version, the last reload and the state of each sink; what the
// guardrails did.
import { admin, explain, query } from "./api.js";
import { align, lineChart } from "./charts.js";
import { badge, fmtDateTime, fmtDuration, fmtMs, fmtNumber, fmtPercent, fmtUsd, h, replace, tableWrap } from "./dom.js";

const RANGES = { hour: { seconds: 3600, bucket: 60, label: "Last hour" }, day: { seconds: 86400, bucket: 900, label: "Last day" } };
const GROUPS = { "": "Everything", provider: "By provider", model: "By model", client: "By client" };
const REFRESH_MS = 15000;

function sum(rows, field) {
  return rows.reduce((total, row) => total + (row && row[field] ? row[field] : 0), 0);
}

// The ungrouped timeseries may come as one series or several: add them up per bucket.
function totals(seriesList) {
  const { xs, byKey } = align(seriesList);
  const points = xs.map((t, i) => {
    const rows = [...byKey.values()].map((r) => r[i]).filter(Boolean);
    const max = (field) => rows.reduce((m, r) => (r[field] === null || r[field] === undefined ? m : Math.max(m ?? 0, r[field])), null);
    return { t, requests: sum(rows, "requests"), errors: sum(rows, "errors"), tokens: sum(rows, "tokens"),
      cost: sum(rows, "cost"), p50_ms: max("p50_ms"), p99_ms: max("p99_ms"), overhead_p50_ms: max("overhead_p50_ms") };
  });
  return { xs, points };
}

function kpi(label, value, detail) {
  return h("div", { class: "kpi" }, h("span", { class: "kpi-label" }, label), h("span", { class: "kpi-value" }, value),
    detail ? h("span", { class: "kpi-detail" }, detail) : null);
}

function statusStrip(status) {
  const reload = status.last_reload || {};
  const ok = reload.result !== "error";
  return h("div", { class: "card status-strip" },
    h("div", {}, h("span", { class: "muted" }, "Config version "), h("code", { "data-testid": "config-version" }, status.config_version || "–")),
    h("div", {}, h("span", { class: "muted" }, "Last reload "), badge(reload.result || "–", ok ? "ok" : "error"),
      " ", reload.at ? fmtDateTime(reload.at) : ""),
    h("div", {}, h("span", { class: "muted" }, "Up "), fmtDuration(status.uptime_s),
      h("span", { class: "muted" }, ` · ${status.providers ?? "–"} providers · ${status.clients ?? "–"} clients`)),
    !ok && reload.error ? h("pre", { class: "reload-error", "data-testid": "reload-error" }, reload.error) : null,
    sinkLine(status.sinks || []));
}

// One line for the sinks of observability.sinks: each one's state, what it delivered and dropped,
// and a failing one's last error.
function sinkLine(sinks) {
  if (!sinks.length) return null;
  return h("div", { class: "sink-line", "data-testid": "sinks" }, h("span", { class: "muted" }, "Sinks "),
    sinks.map((sink) => h("span", { class: "sink", "data-testid": `sink-${sink.name}`, title: sink.last_error || "" },
      `${sink.name} (${sink.type}) `, badge(sink.state, sink.state === "ok" ? "ok" : sink.state === "failing" ? "error" : "muted"),
      h("span", { class: "muted" }, ` ${fmtNumber(sink.delivered || 0)} delivered, ${fmtNumber(sink.dropped || 0)} dropped`),
      sink.state === "failing" && sink.last_error ? h("span", { class: "error sink-error" }, ` ${sink.last_error}`) : null)));
}

// The response cache: its hit rate since the gateway started (lookups: hits and misses, from the
// status) and what its hits saved in the period shown (from the ledger, via /stats).
function cacheTile(cache, stats) {
  const groups = (stats && stats.groups) || [];
  const saved = `${fmtUsd(sum(groups, "saved_usd"))} saved by ${fmtNumber(sum(groups, "cache_hits"))} hits in this period`;
  const lookups = cache ? cache.hits + cache.misses : 0;
  return h("div", { class: "kpi", "data-testid": "cache-tile" }, h("span", { class: "kpi-label" }, "Cache hit rate"),
    h("span", { class: "kpi-value", "data-testid": "cache-hit-rate" }, lookups ? fmtPercent(cache.hit_rate) : "–"),
    h("span", { class: "kpi-detail", "data-testid": "cache-lookups" },
      lookups ? `${fmtNumber(cache.hits)} hits, ${fmtNumber(cache.misses)} misses since start` : "no lookups yet"),
    h("span", { class: "kpi-detail", "data-testid": "cache-saved" }, saved));
}

// The guardrails: the configured guards and their actions (block, mask, log, replace, error) since
// the gateway started, from the status (the Prometheus counter, all workers). Never any content.
function guardrailsCard(guardrails) {
  const guards = (guardrails && guardrails.guards) || [];
  const actions = (guardrails && guardrails.actions) || [];
  const head = h("h2", {}, "Guardrails");
  if (!guards.length) return h("div", { class: "card guardrails-card", "data-testid": "guardrails" }, head,
    h("p", { class: "empty" }, "No guardrails configured (guardrails in config.yaml)."));
  const byGuard = new Map(guards.map((g) => [g.name, {}]));
  for (const a of actions) {
    if (!byGuard.has(a.guardrail)) byGuard.set(a.guardrail, {});
    byGuard.get(a.guardrail)[a.action] = a.count;
  }
  const kinds = ["block", "mask", "log", "replace", "error"];
  const rows = [...byGuard.entries()].map(([name, counts]) => h("tr", { "data-guardrail": name },
    h("td", {}, name), kinds.map((k) => h("td", { class: "num", "data-action": k }, fmtNumber(counts[k] || 0)))));
  const total = actions.reduce((n, a) => n + a.count, 0);
  return h("div", { class: "card guardrails-card", "data-testid": "guardrails" }, head,
    h("p", { class: "muted" }, `${fmtNumber(total)} actions since start · default: ${(guardrails.default || []).join(", ") || "none"}`),
    tableWrap(["Guard", "Blocked", "Masked", "Logged", "Replaced", "Errors"], rows));
}

function kpis(points, rangeSeconds, cache) {
  const requests = sum(points, "requests");
  const errors = sum(points, "errors");
  const recent = points.filter((p) => p.t >= Date.now() / 1000 - 5 * 60);
  const perMin = recent.length ? sum(recent, "requests") / 5 : 0;
  const last = [...points].reverse().find((p) => p.requests > 0) || {};
  return h("div", { class: "kpis", "data-testid": "kpis" },
    kpi("Requests / min", fmtNumber(perMin), `${fmtNumber(requests)} in ${fmtDuration(rangeSeconds)}`),
    kpi("Success rate", requests ? fmtPercent((requests - errors) / requests) : "–", `${fmtNumber(errors)} errors`),
    kpi("Latency p50 / p99", `${fmtMs(last.p50_ms)} / ${fmtMs(last.p99_ms)}`, "latest bucket"),
    kpi("Gateway overhead p50", fmtMs(last.overhead_p50_ms), "latest bucket"),
    kpi("Tokens", fmtNumber(sum(points, "tokens"))),
    kpi("Cost", fmtUsd(sum(points, "cost")), "spent; cache hits cost nothing"),
    cache);
}

function statsTable(stats) {
  const groups = (stats && stats.groups) || [];
  const rows = groups.map((g) => h("tr", {},
    h("td", {}, g.key), h("td", { class: "num" }, fmtNumber(g.requests)), h("td", { class: "num" }, fmtNumber(g.errors)),
    h("td", { class: "num" }, fmtNumber(g.cache_hits || 0)), h("td", { class: "num" }, fmtUsd(g.saved_usd || 0)),
    h("td", { class: "num" }, g.requests ? fmtPercent((g.requests - (g.errors || 0)) / g.requests) : "–"),
    h("td", { class: "num" }, fmtNumber(g.tokens)), h("td", { class: "num" }, fmtUsd(g.cost)),
    h("td", { class: "num" }, fmtMs(g.p50_latency_ms ?? g.avg_latency_ms)), h("td", { class: "num" }, fmtMs(g.p99_latency_ms))));
  if (!rows.length) return h("p", { class: "empty" }, "No requests in this period.");
  return tableWrap([stats.group_by || "", "Requests", "Errors", "Cache hits", "Saved", "Success", "Tokens", "Cost", "p50", "p99"], rows);
}

export function mountOverview(page, { banner }) {
  const state = { range: "hour", group: "provider", cache: null, stats: null };
  let tile = cacheTile(null, null);
  // Either load may finish first: each redraws the cache tile with what both have fetched so far.
  const redrawTile = () => { const next = cacheTile(state.cache, state.stats); tile.replaceWith(next); tile = next; };
  const charts = [];
  let timer = null;
  let alive = true;

  const rangeSelect = h("select", { "aria-label": "Period", onchange: (e) => { state.range = e.target.value; load(); } },
    Object.entries(RANGES).map(([v, r]) => h("option", { value: v }, r.label)));
  const groupSelect = h("select", { "aria-label": "Group by", onchange: (e) => { state.group = e.target.value; load(); } },
    Object.entries(GROUPS).map(([v, label]) => h("option", { value: v, selected: v === state.group }, label)));
  const statusBox = h("div", { class: "status-box" });
  const guardBox = h("div");
  const kpiBox = h("div");
  const chartBox = h("div", { class: "charts" });
  const tableBox = h("div", { class: "card" });
  page.append(h("div", { class: "page-head" }, h("h1", {}, "Overview"), h("div", { class: "controls" }, rangeSelect, groupSelect)),
    statusBox, kpiBox, chartBox, h("h2", {}, "Breakdown"), tableBox, guardBox);

  async function loadStatus() {
    try {
      const status = await admin.get("/status");
      replace(statusBox, statusStrip(status));
      replace(guardBox, guardrailsCard(status.guardrails));
      state.cache = status.cache;
      redrawTile();
    }
    catch (err) { replace(statusBox, h("p", { class: "error" }, "Gateway status: " + explain(err))); }
  }

  async function load() {
    const range = RANGES[state.range];
    const end = Math.floor(Date.now() / 1000);
    const start = end - range.seconds;
    const base = { bucket_s: range.bucket, start, end };
    const errors = [];
    const [all, grouped, stats] = await Promise.all([
      admin.get("/timeseries" + query(base)).catch((e) => { errors.push(e); return { series: [], unavailable: true }; }),
      state.group ? admin.get("/timeseries" + query({ ...base, group_by: state.group })).catch((e) => { errors.push(e); return { series: [] }; }) : null,
      admin.get("/stats" + query({ group_by: state.group || "provider", start, end })).catch((e) => { errors.push(e); return null; }),
    ]);
    if (!alive) return;
    banner(errors.length ? "Some numbers are missing: " + explain(errors[0]) : "");
    const { xs, points } = totals(all.series || []);
    state.stats = stats;
    tile = cacheTile(state.cache, stats);
    replace(kpiBox, all.unavailable ? h("div", { class: "kpis", "data-testid": "kpis" }, kpi("Requests / min", "–"), kpi("Success rate", "–"), tile)
      : kpis(points, range.seconds, tile));
    for (const chart of charts.splice(0)) chart.destroy();
    replace(chartBox);
    const perMin = 60 / range.bucket;
    const groupedSeries = grouped ? grouped.series || [] : [{ key: "all", points }];
    const aligned = align(groupedSeries);
    const column = (field, scale = 1) => [...aligned.byKey.entries()].map(([key, rows]) => ({
      label: key, values: rows.map((r) => (r ? (r[field] || 0) * scale : null)) }));
    charts.push(lineChart(chartBox, { title: "Requests per minute", xs: aligned.xs, series: column("requests", perMin), format: fmtNumber }));
    charts.push(lineChart(chartBox, { title: "Success rate", xs, yRange: [0, 1], format: fmtPercent,
      series: [{ label: "success", color: "#1b9e5a", values: points.map((p) => (p.requests ? (p.requests - p.errors) / p.requests : null)) }] }));
    charts.push(lineChart(chartBox, { title: "Latency and gateway overhead", xs, format: fmtMs, series: [
      { label: "p50", values: points.map((p) => p.p50_ms) },
      { label: "p99", values: points.map((p) => p.p99_ms), color: "#c42b52" },
      { label: "overhead p50", values: points.map((p) => p.overhead_p50_ms), color: "#5f6b7a", dash: [4, 4] }] }));
    charts.push(lineChart(chartBox, { title: "Tokens", xs: aligned.xs, series: column("tokens"), format: fmtNumber }));
    charts.push(lineChart(chartBox, { title: "Cost (USD)", xs: aligned.xs, series: column("cost"), format: fmtUsd }));
    replace(tableBox, statsTable(stats));
  }

  function refresh() {
    if (document.hidden) return;
    loadStatus();
    load();
  }
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
  return () => { alive = false; clearInterval(timer); for (const chart of charts.splice(0)) chart.destroy(); };
}
