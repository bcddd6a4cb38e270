// Clients: list, create (the key shown once, with a copy button), edit limits, budget and allowed
// providers, rotate, delete; spend against budget as a bar. Keys from config.yaml are read-only.
import { admin, explain } from "./api.js";
import { badge, fmtDateTime, fmtNumber, fmtUsd, h, replace, tableWrap } from "./dom.js";

function spendBar(label, spent, budget) {
  const used = spent || 0;
  if (!budget) return h("div", { class: "spend" }, h("span", { class: "small muted" }, `${label}: ${fmtUsd(used)} (no budget)`));
  const ratio = Math.min(1, used / budget);
  const kind = ratio >= 1 ? "error" : ratio >= 0.8 ? "warn" : "ok";
  return h("div", { class: "spend" },
    h("span", { class: "small" }, `${label}: ${fmtUsd(used)} of ${fmtUsd(budget)}`),
    h("div", { class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": budget, "aria-valuenow": used, "aria-label": `${label} spend` },
      h("div", { class: `bar-fill bar-${kind}`, style: { width: `${(ratio * 100).toFixed(1)}%` } })));
}

function limitsText(limits) {
  const l = limits || {};
  const parts = [];
  if (l.req_per_min) parts.push(`${fmtNumber(l.req_per_min)} req/min`);
  if (l.tokens_per_min) parts.push(`${fmtNumber(l.tokens_per_min)} tok/min`);
  return parts.join(", ") || "no limit";
}

function listText(values) {
  if (!values || !values.length || values.includes("*")) return "all";
  return values.join(", ");
}

// The one place a client key appears: right after create or rotate, until dismissed.
function keyReveal(clientId, apiKey, onDone) {
  const field = h("input", { readonly: true, value: apiKey, class: "key-field", "aria-label": `API key of ${clientId}`, "data-testid": "new-key" });
  const status = h("span", { class: "small muted", role: "status" });
  const copy = async () => {
    try { await navigator.clipboard.writeText(field.value); status.textContent = "Copied."; }
    catch { field.select(); status.textContent = document.execCommand("copy") ? "Copied." : "Select the key and copy it."; }
  };
  const box = h("div", { class: "card reveal", role: "alert" },
    h("p", {}, h("strong", {}, `The key of ${clientId}`), " — shown this once. Copy it now: the gateway keeps only its hash."),
    h("div", { class: "inline-form" }, field, h("button", { type: "button", class: "primary", onclick: copy }, "Copy"),
      h("button", { type: "button", onclick: () => { field.value = ""; box.remove(); onDone(); } }, "Done")),
    status);
  return box;
}

function numberOrNull(value) {
  const text = String(value || "").trim();
  return text === "" ? null : Number(text);
}

function clientForm(existing, providers, onSave, onCancel) {
  const c = existing || { allowed_providers: ["*"], limits: {}, budget: {} };
  const all = !c.allowed_providers || c.allowed_providers.includes("*");
  const field = (label, input) => h("label", {}, label, input);
  const checks = providers.map((id) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "provider", value: id, checked: !all && c.allowed_providers.includes(id) }), id));
  const form = h("form", { class: "card client-form", "data-testid": existing ? "edit-client" : "create-client" },
    h("h2", {}, existing ? `Edit ${existing.client_id}` : "New client"),
    existing ? null : field("Client id", h("input", { name: "client_id", required: true, pattern: "[A-Za-z0-9._:@\\-]+", maxlength: 128 })),
    field("Description", h("input", { name: "description", value: c.description || "" })),
    h("fieldset", {}, h("legend", {}, "Allowed providers"),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "all_providers", checked: all }), "all"), checks),
    field("Allowed models (comma-separated; empty = all)", h("input", { name: "allowed_models",
      value: c.allowed_models && !c.allowed_models.includes("*") ? c.allowed_models.join(", ") : "" })),
    h("div", { class: "grid2" },
      field("Requests / min", h("input", { name: "rpm", type: "number", min: 1, step: 1, value: (c.limits || {}).req_per_min ?? "" })),
      field("Tokens / min", h("input", { name: "tpm", type: "number", min: 1, step: 1, value: (c.limits || {}).tokens_per_min ?? "" })),
      field("Daily budget (USD)", h("input", { name: "daily", type: "number", min: 0, step: "any", value: (c.budget || {}).daily_usd ?? "" })),
      field("Monthly budget (USD)", h("input", { name: "monthly", type: "number", min: 0, step: "any", value: (c.budget || {}).monthly_usd ?? "" }))),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "admin", checked: Boolean(c.admin) }), "admin (may use the admin API and this dashboard)"),
    h("p", { class: "error", role: "alert" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create"),
      h("button", { type: "button", onclick: onCancel }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const chosen = [...form.querySelectorAll("input[name=provider]:checked")].map((i) => i.value);
    const models = f.allowed_models.value.split(",").map((m) => m.trim()).filter(Boolean);
    const body = {
      description: f.description.value.trim(),
      allowed_providers: f.all_providers.checked || !chosen.length ? ["*"] : chosen,
      allowed_models: models.length ? models : ["*"],
      limits: { req_per_min: numberOrNull(f.rpm.value), tokens_per_min: numberOrNull(f.tpm.value) },
      budget: { daily_usd: numberOrNull(f.daily.value), monthly_usd: numberOrNull(f.monthly.value) },
      admin: f.admin.checked,
    };
    if (!existing) body.client_id = f.client_id.value.trim();
    try { await onSave(body); }
    catch (err) { form.querySelector(".error").textContent = explain(err); }
  });
  return form;
}

function clientRow(c, actions) {
  // a shadowed client (config.yaml holds its id too) has its key refused: it may only be deleted
  const readOnly = c.source === "config";
  const fixed = readOnly || c.shadowed;
  const why = readOnly ? "Defined in config.yaml: edit it there"
    : c.shadowed ? "config.yaml has a client with this id, so this one's key is refused: delete it, or remove the id from config.yaml" : undefined;
  const spend = c.spend || {};
  const budget = c.budget || {};
  return h("tr", { "data-client": c.client_id },
    h("td", {}, h("strong", {}, c.client_id), c.admin ? [" ", badge("admin", "warn")] : null,
      c.description ? h("div", { class: "small muted" }, c.description) : null),
    h("td", {}, badge(c.source || "api", readOnly ? "muted" : "ok"), c.shadowed ? [" ", h("span", { title: why }, badge("shadowed", "warn"))] : null),
    h("td", {}, listText(c.allowed_providers)),
    h("td", {}, limitsText(c.limits)),
    h("td", { class: "spend-cell" }, spendBar("today", spend.day_usd, budget.daily_usd), spendBar("month", spend.month_usd, budget.monthly_usd)),
    h("td", { class: "small" }, fmtDateTime(c.last_used)),
    h("td", {}, h("div", { class: "row-actions" },
      h("button", { type: "button", class: "small", disabled: fixed, title: why, onclick: () => actions.edit(c) }, "Edit"),
      h("button", { type: "button", class: "small", disabled: fixed, title: why, onclick: () => actions.rotate(c) }, "Rotate"),
      h("button", { type: "button", class: "small danger", disabled: readOnly, title: why, onclick: () => actions.remove(c) }, "Delete"))));
}

export function mountClients(page, { banner }) {
  let alive = true;
  let providers = [];
  const panel = h("div");
  const list = h("div", { class: "card" });
  const path = (id) => `/clients/${encodeURIComponent(id)}`;
  const showKey = (clientId, apiKey) => replace(panel, keyReveal(clientId, apiKey, () => replace(panel)));

  const actions = {
    edit(c) {
      replace(panel, clientForm(c, providers, async (body) => {
        await admin.put(path(c.client_id), body);
        replace(panel);
        banner(`Saved ${c.client_id}.`, "ok");
        load();
      }, () => replace(panel)));
    },
    async rotate(c) {
      if (!confirm(`Rotate the key of ${c.client_id}? The old key stops working at once.`)) return;
      try { const out = await admin.post(path(c.client_id) + "/rotate"); showKey(c.client_id, out.api_key); }
      catch (err) { banner(`Could not rotate ${c.client_id}: ${explain(err)}`); }
      load();
    },
    async remove(c) {
      if (!confirm(`Delete ${c.client_id}? Its key stops working at once.`)) return;
      try { await admin.del(path(c.client_id)); banner(`Deleted ${c.client_id}.`, "ok"); }
      catch (err) { banner(`Could not delete ${c.client_id}: ${explain(err)}`); }
      load();
    },
  };

  const create = () => replace(panel, clientForm(null, providers, async (body) => {
    const out = await admin.post("/clients", body);
    showKey(out.client.client_id, out.api_key);
    load();
  }, () => replace(panel)));

  page.append(h("div", { class: "page-head" }, h("h1", {}, "Clients"),
    h("button", { type: "button", class: "primary", onclick: create }, "New client")), panel, list);

  async function load() {
    try {
      const [data, prov] = await Promise.all([admin.get("/clients"), admin.get("/providers").catch(() => null)]);
      if (!alive) return;
      providers = ((prov && prov.providers) || []).map((p) => p.id);
      const clients = (data && data.clients) || [];
      replace(list, clients.length
        ? tableWrap(["Client", "Source", "Providers", "Limits", "Spend", "Last used", ""], clients.map((c) => clientRow(c, actions)))
        : h("p", { class: "empty" }, "No clients yet."));
    } catch (err) {
      if (alive) replace(list, h("p", { class: "error" }, explain(err)));
    }
  }
  load();
  return () => { alive = false; replace(panel); };
}
