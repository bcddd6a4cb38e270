// Time-series charts with uPlot (bundled in ../vendor, nothing fetched from elsewhere).
import uPlot from "../vendor/uPlot.esm.min.js";
import { h } from "./dom.js";

export const PALETTE = ["#2458d6", "#e2711d", "#1b9e5a", "#c42b52", "#7b4fd0", "#0e9aa7", "#b08800", "#5f6b7a"];

// series: [{label, values, color?, dash?}], xs: unix seconds; format: value -> text
export function lineChart(container, { title, xs, series, format, yRange }) {
  const box = h("figure", { class: "chart" }, h("figcaption", {}, title));
  const plotArea = h("div", { class: "chart-plot" });
  box.append(plotArea);
  container.append(box);
  if (!xs.length || !series.length) {
    plotArea.append(h("p", { class: "empty" }, "No requests in this period."));
    return { destroy() {} };
  }
  const muted = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#667085";
  const width = () => Math.max(240, plotArea.clientWidth || container.clientWidth || 320);
  const opts = {
    width: width(),
    height: 200,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
    axes: [
      { stroke: muted, grid: { stroke: "rgba(128,128,128,0.15)" } },
      { stroke: muted, grid: { stroke: "rgba(128,128,128,0.15)" }, size: 64,
        values: (u, ticks) => ticks.map((v) => format(v)) },
    ],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: 2, dash: s.dash,
        // few values (traffic in a few buckets only): dots, since a lone value draws no line
        spanGaps: false, points: { show: s.values.filter((v) => v !== null && v !== undefined).length < 40 },
        value: (u, v) => (v === null || v === undefined ? "–" : format(v)),
      })),
    ],
  };
  const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)], plotArea);
  const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 200 }));
  observer.observe(plotArea);
  return { destroy() { observer.disconnect(); plot.destroy(); } };
}

// Align several [{t, ...}] point lists on one time axis. Returns {xs, columns: Map(key -> (field) -> values)}
export function align(seriesList) {
  const times = new Set();
  for (const s of seriesList) for (const p of s.points) times.add(p.t);
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const byKey = new Map();
  for (const s of seriesList) {
    const rows = new Array(xs.length).fill(null);
    for (const p of s.points) rows[index.get(p.t)] = p;
    byKey.set(s.key, rows);
  }
  return { xs, byKey };
}
