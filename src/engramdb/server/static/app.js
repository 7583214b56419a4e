// The engramdb web UI: signing in, the views behind the #/ routes, and what they share.

import * as add from "./modules/add.js";
import { api, clearKey, describe, getKey, onUnauthorized, setKey } from "./modules/api.js";
import { $, h } from "./modules/dom.js";
import * as memory from "./modules/memory.js";
import * as recall from "./modules/recall.js";
import * as report from "./modules/report.js";
import * as stats from "./modules/stats.js";
import { hush, say } from "./modules/ui.js";
import * as upload from "./modules/upload.js";

const VIEWS = { recall, memory, add, upload, stats, report };
const WRITING = new Set(["add", "upload"]);

let who = null;
const namespaces = new Set();

function parseHash() {
  const match = /^#\/([a-z]+)(?:\/(.+))?$/.exec(location.hash);
  if (!match) return ["recall", null];
  return [match[1], match[2] ? decodeURIComponent(match[2]) : null];
}

function showOnly(id) {
  $("#booting").hidden = true;
  for (const section of document.querySelectorAll("main > .view")) section.hidden = section.id !== id;
}

function route({ focus = false } = {}) {
  if (!who) return;
  let [name, arg] = parseHash();
  if (!(name in VIEWS) || (name === "memory" && !arg) || (WRITING.has(name) && !who.write)) {
    name = "recall";
  }
  showOnly(`view-${name}`);
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  VIEWS[name].show?.(arg);
  if (focus) document.querySelector(`#view-${name} h1`)?.focus({ preventScroll: false });
}

function addNamespaces(list) {
  for (const ns of list ?? []) namespaces.add(String(ns));
  const datalist = $("#ns-list");
  datalist.replaceChildren(...[...namespaces].sort().map((ns) => h("option", { value: ns })));
}

function signedIn(answer) {
  who = answer ?? {};
  $("#nav").hidden = false;
  for (const link of document.querySelectorAll("#nav a")) {
    link.hidden = WRITING.has(link.dataset.view) && !who.write;
  }
  const label = who.key
    ? `${who.key}${who.write ? "" : " (read-only)"}`
    : who.keys_required
      ? "signed in"
      : "open store (no keys)";
  $("#who-text").textContent = label;
  $("#who").hidden = false;
  $("#logout").hidden = !who.keys_required;
  namespaces.clear();
  addNamespaces(who.namespaces);
  if (!who.namespaces) {
    api("v1/stats")
      .then((s) => addNamespaces(Object.keys(s?.namespaces ?? {})))
      .catch(() => {});
  }
  route();
}

function forgetEverything() {
  who = null;
  namespaces.clear();
  addNamespaces([]);
  for (const form of document.querySelectorAll("main form")) form.reset();
  for (const view of Object.values(VIEWS)) view.reset?.();
  for (const id of ["#memory-body", "#stats-body"]) $(id).replaceChildren();
  $("#nav").hidden = true;
  $("#who").hidden = true;
}

function showLogin(message, kind = "error") {
  forgetEverything();
  showOnly("view-login");
  const msg = $("#view-login [data-msg]");
  if (message) say(msg, message, kind);
  else hush(msg);
  $("#login-key").focus();
}

async function login(event) {
  event.preventDefault();
  const input = $("#login-key");
  const msg = $("#view-login [data-msg]");
  const key = input.value.trim();
  if (!key) {
    say(msg, "Enter your API key.", "error");
    return;
  }
  setKey(key);
  try {
    const answer = await api("v1/whoami");
    input.value = "";
    hush(msg);
    signedIn(answer);
  } catch (err) {
    clearKey();
    say(msg, err.status === 401 ? "That key was not accepted." : describe(err), "error");
  }
}

function logout() {
  clearKey();
  showLogin("You are signed out.", "ok");
}

async function boot() {
  const context = {
    canWrite: () => Boolean(who && who.write),
    whoami: () => who,
    namespacesSeen: addNamespaces,
    forgotten() {
      recall.invalidate();
      location.hash = "#/recall";
    },
  };
  for (const view of Object.values(VIEWS)) view.init(context);
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  window.addEventListener("hashchange", () => route({ focus: true }));
  onUnauthorized(() => {
    if (!who) return;
    clearKey();
    showLogin("Your key is no longer accepted. Sign in again.");
  });
  try {
    signedIn(await api("v1/whoami"));
  } catch (err) {
    if (err.status === 401) {
      const hadKey = Boolean(getKey());
      clearKey();
      showLogin(hadKey ? "Your key is no longer accepted. Sign in again." : null);
    } else {
      const booting = $("#booting");
      booting.textContent = `The server did not answer: ${describe(err)}`;
      booting.className = "msg error";
      booting.setAttribute("role", "alert");
    }
  }
}

boot();
