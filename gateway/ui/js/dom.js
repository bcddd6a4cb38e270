// Small DOM helpers: every value reaches the page as text (never as HTML), so nothing a client id,
// a model name or an error message contains can run as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = Boolean(value);
    else if (name === "style" && typeof value === "object") Object.assign(el.style, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function fmtNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e9) return numberFormat.format(value / 1e9) + "G";
  if (abs >= 1e6) return numberFormat.format(value / 1e6) + "M";
  if (abs >= 1e4) return numberFormat.format(value / 1e3) + "k";
  return numberFormat.format(value);
}

export function fmtUsd(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const digits = value !== 0 && Math.abs(value) < 1 ? 4 : 2;
  return "$" + value.toFixed(digits);
}

export function fmtMs(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
}

export function fmtPercent(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return (value * 100).toFixed(value >= 0.999 || value === 0 ? 0 : 1) + "%";
}

export function fmtTime(unixSeconds) {
  if (!unixSeconds) return "–";
  return new Date(unixSeconds * 1000).toLocaleTimeString();
}

export function fmtDateTime(unixSeconds) {
  if (!unixSeconds) return "never";
  return new Date(unixSeconds * 1000).toLocaleString();
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

export function badge(text, kind) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

export function tableWrap(headers, rows, attrs = {}) {
  return h("div", { class: "table-wrap" },
    h("table", attrs,
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows)));
}
