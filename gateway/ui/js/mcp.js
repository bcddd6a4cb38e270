// MCP servers: each one's health (as the worker answering sees it) and its tools, and the tool
// calls of the last 24 hours per client and per tool (from the usage ledger).
import { admin, explain, query } from "./api.js";
import { badge, fmtMs, fmtNumber, fmtTime, fmtUsd, h, replace, tableWrap } from "./dom.js";

const REFRESH_MS = 5000;
const DAY_S = 86400;
const HEALTH = { up: "ok", slow: "warn", down: "error", unknown: "muted" };

function healthBadge(server) {
  return h("span", { "data-testid": "mcp-health" }, badge(server.health, HEALTH[server.health] || "muted"));
}

async function showTools(server, cell, banner) {
  try {
    const data = await admin.get(`/mcp/servers/${encodeURIComponent(server.id)}/tools`);
    const tools = (data && data.tools) || [];
    replace(cell, tools.length
      ? h("ul", { class: "tools" }, tools.map((t) => h("li", {}, h("code", {}, t.name),
          t.allowed ? "" : [" ", badge("denied by the server's rules", "muted")],
          t.description ? h("span", { class: "muted small" }, " ", t.description) : null)))
      : h("p", { class: "empty" }, data && data.error ? `No tools: ${data.error}` : "No tools."));
  } catch (err) { banner(`Could not list the tools of ${server.id}: ${explain(err)}`); }
}

function serverRow(server, banner) {
  const tools = h("div", { class: "tools-cell" });
  const show = h("button", { type: "button", class: "small", onclick: () => showTools(server, tools, banner) }, "Tools");
  return [
    h("tr", { "data-mcp-server": server.id },
      h("td", {}, h("code", {}, server.id)), h("td", {}, server.transport), h("td", {}, healthBadge(server)),
      h("td", { class: "muted small" }, server.error || ""),
      h("td", { class: "num" }, server.tools === null ? "–" : fmtNumber(server.tools)),
      h("td", { class: "num" }, fmtNumber(server.in_flight)), h("td", {}, fmtTime(server.since)),
      h("td", {}, show)),
    h("tr", { class: "tools-row" }, h("td", { colspan: 8 }, tools)),
  ];
}

function callRows(groups) {
  return groups.map((g) => h("tr", {}, h("td", {}, h("code", {}, g.key)), h("td", { class: "num" }, fmtNumber(g.calls)),
    h("td", { class: "num" }, fmtNumber(g.errors)), h("td", { class: "num" }, fmtUsd(g.cost)),
    h("td", { class: "num" }, fmtMs(g.avg_latency_ms))));
}

export function mountMcp(page, { banner }) {
  let alive = true;
  const servers = h("div", { class: "card" });
  const byClient = h("div", { class: "card" });
  const byTool = h("div", { class: "card" });
  page.append(h("div", { class: "page-head" }, h("h1", {}, "MCP servers")), servers,
    h("div", { class: "grid2 mcp-calls" }, byClient, byTool));
  async function calls(target, title, groupBy) {
    const now = Math.floor(Date.now() / 1000);
    const data = await admin.get(`/mcp/calls${query({ group_by: groupBy, start: now - DAY_S, end: now })}`);
    const groups = (data && data.groups) || [];
    replace(target, h("h2", {}, title), groups.length
      ? tableWrap([groupBy === "client" ? "Client" : "Tool", "Calls", "Errors", "Cost", "Avg latency"], callRows(groups))
      : h("p", { class: "empty" }, "No tool calls in the last 24 hours."));
  }
  async function load() {
    if (document.hidden || servers.querySelector(".tools-cell li")) return;
    try {
      const data = await admin.get("/mcp/servers");
      if (!alive) return;
      const list = (data && data.servers) || [];
      replace(servers, h("h2", {}, "Servers"), list.length
        ? tableWrap(["Server", "Transport", "Health", "Why", "Tools", "In flight", "Since", ""],
            list.flatMap((s) => serverRow(s, banner)), { "data-testid": "mcp-servers" })
        : h("p", { class: "empty" }, "No MCP servers configured (mcp_servers in config.yaml)."));
      await calls(byClient, "Tool calls per client (24 h)", "client");
      await calls(byTool, "Tool calls per tool (24 h)", "tool");
    } catch (err) {
      if (alive) replace(servers, h("p", { class: "error" }, explain(err)));
    }
  }
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => { alive = false; clearInterval(timer); };
}
