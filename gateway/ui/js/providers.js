// Providers and keys: each key by label with its state, requests and 429s; add and remove keys.
// A key is sent once, from a password field that is cleared at once; it is never shown again.
import { admin, explain } from "./api.js";
import { badge, fmtNumber, fmtTime, h, replace, tableWrap } from "./dom.js";

const REFRESH_MS = 5000;
const STATE = { ok: ["ok", "ok"], cooling: ["cooling", "warn"], quarantined: ["quarantined", "error"], circuit_open: ["circuit open", "error"] };

function keyState(key) {
  const [text, kind] = STATE[key.state] || [key.state || "unknown", "muted"];
  const until = key.until && key.state !== "ok"
    ? ` until ${fmtTime(key.until)} (${Math.max(0, Math.round(key.until - Date.now() / 1000))} s)` : "";
  return h("span", { "data-testid": "key-state" }, badge(text, kind), until);
}

function keyRow(provider, key, reload, banner) {
  const remove = async () => {
    if (!confirm(`Remove key ${key.label} from ${provider.id}? Requests stop using it at once.`)) return;
    try { await admin.del(`/providers/${encodeURIComponent(provider.id)}/keys/${encodeURIComponent(key.label)}`); banner(`Removed ${key.label}.`, "ok"); }
    catch (err) { banner(`Could not remove ${key.label}: ${explain(err)}`); }
    reload();
  };
  return h("tr", { "data-key": key.label },
    h("td", {}, h("code", {}, key.label)), h("td", {}, keyState(key)),
    h("td", { class: "num" }, fmtNumber(key.in_flight ?? 0)),
    h("td", { class: "num" }, fmtNumber(key.requests_1h ?? 0)),
    h("td", { class: "num" }, fmtNumber(key.rate_limited_1h ?? 0)),
    h("td", {}, h("button", { type: "button", class: "danger small", onclick: remove }, "Remove")));
}

function addKeyForm(provider, reload, banner) {
  const input = h("input", { type: "password", name: "api_key", autocomplete: "new-password", spellcheck: "false",
    placeholder: "New API key", "aria-label": `New API key for ${provider.id}`, required: true });
  const submit = async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    input.value = "";
    if (!value) return;
    try {
      const added = await admin.post(`/providers/${encodeURIComponent(provider.id)}/keys`, { api_key: value });
      banner(`Added key ${added && added.label ? added.label : ""} to ${provider.id}.`, "ok");
    } catch (err) { banner(`Could not add the key to ${provider.id}: ${explain(err)}`); }
    reload();
  };
  return h("form", { class: "inline-form", onsubmit: submit }, input, h("button", { type: "submit" }, "Add key"));
}

function providerCard(provider, reload, banner) {
  const keys = provider.keys || [];
  const models = (provider.models || []).join(", ");
  return h("section", { class: "card provider", "data-provider": provider.id },
    h("div", { class: "card-head" }, h("h2", {}, provider.id), h("span", { class: "muted" }, provider.type || "")),
    models ? h("p", { class: "muted small" }, "Models: ", models) : null,
    keys.length
      ? tableWrap(["Key", "State", "In flight", "Requests (1 h)", "429s (1 h)", ""], keys.map((k) => keyRow(provider, k, reload, banner)))
      : h("p", { class: "empty" }, "No keys: requests to this provider fail until one is added."),
    addKeyForm(provider, reload, banner));
}

export function mountProviders(page, { banner }) {
  let alive = true;
  const list = h("div", { class: "providers" });
  page.append(h("div", { class: "page-head" }, h("h1", {}, "Providers & keys")), list);
  async function load(force = false) {
    if (!force && (document.hidden || list.querySelector("input:focus"))) return;
    try {
      const data = await admin.get("/providers");
      if (!alive) return;
      const providers = (data && data.providers) || [];
      replace(list, providers.length ? providers.map((p) => providerCard(p, () => load(true), banner)) : h("p", { class: "empty" }, "No providers configured."));
    } catch (err) {
      if (alive) replace(list, h("p", { class: "error" }, explain(err)));
    }
  }
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => { alive = false; clearInterval(timer); };
}
