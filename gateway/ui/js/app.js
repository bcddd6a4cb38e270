// Sign-in, navigation between the pages, and the banner for errors.
import { request, setCsrfToken } from "./api.js";
import { replace } from "./dom.js";
import { mountOverview } from "./overview.js";
import { mountProviders } from "./providers.js";
import { mountClients } from "./clients.js";
import { mountLog } from "./log.js";
import { mountMcp } from "./mcp.js";

const PAGES = { overview: mountOverview, providers: mountProviders, clients: mountClients, mcp: mountMcp, log: mountLog };
const $ = (selector) => document.querySelector(selector);
let unmount = null;
let loginMode = "password";

function showBanner(message, kind = "error") {
  const banner = $("#banner");
  banner.className = `banner banner-${kind}`;
  replace(banner, message);
  banner.hidden = !message;
}

function showLogin(message = "") {
  if (unmount) { unmount(); unmount = null; }
  replace($("#page"));
  setCsrfToken("");
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  const first = $("#login-form").querySelector(loginMode === "key" ? "input[name=key]" : "input[name=username]");
  first.focus();
}

function showApp(session) {
  setCsrfToken(session.csrf_token);
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#who").textContent = session.who || "";
  route();
}

function route() {
  if ($("#app").hidden) return;
  const name = (location.hash || "#overview").slice(1);
  const mount = PAGES[name] || PAGES.overview;
  if (unmount) unmount();
  showBanner("");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === (PAGES[name] ? name : "overview"));
  }
  const page = replace($("#page"));
  page.dataset.page = PAGES[name] ? name : "overview";
  unmount = mount(page, { banner: showBanner }) || null;
}

function setLoginMode(mode) {
  loginMode = mode;
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
  }
  for (const part of document.querySelectorAll("#login-form [data-for]")) part.hidden = part.dataset.for !== mode;
}

async function submitLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = $("#login-submit");
  const body = loginMode === "key"
    ? { key: form.elements.key.value.trim() }
    : { username: form.elements.username.value.trim(), password: form.elements.password.value };
  button.disabled = true;
  $("#login-error").textContent = "";
  try {
    const session = await request("POST", "/ui/api/login", body);
    form.elements.password.value = "";
    form.elements.key.value = "";
    showApp(session);
  } catch (err) {
    $("#login-error").textContent = err.message || "Sign-in failed.";
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try {
    await request("POST", "/ui/api/logout");
  } finally {
    showLogin("Signed out.");
  }
}

async function start() {
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
    tab.addEventListener("click", () => setLoginMode(tab.dataset.mode));
  }
  $("#login-form").addEventListener("submit", submitLogin);
  $("#logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  window.addEventListener("gateway:signed-out", async () => {
    const session = await request("GET", "/ui/api/session").catch(() => ({ signed_in: false }));
    if (!session.signed_in) showLogin("Your session has ended: sign in again.");
  });
  const session = await request("GET", "/ui/api/session").catch(() => ({ signed_in: false }));
  if (session.signed_in) showApp(session);
  else showLogin();
}

start();
