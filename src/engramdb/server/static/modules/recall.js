// The recall playground: a query with its options, and the hits with why and where each came from.

import { api } from "./api.js";
import { $, fill, fmtNum, fmtPosition, fmtTime, h } from "./dom.js";
import { InputError, busy, hush, jsonField, say, sayError, trimmed } from "./ui.js";

let form;
let msg;
let results;
let last = null;
let stale = false;

function request() {
  const body = {
    query: trimmed(form, "query"),
    k: Number(form.elements.k.value || 10),
    channels: form.elements.channels.value,
  };
  const namespace = trimmed(form, "namespace");
  if (namespace) body.namespace = namespace;
  const where = jsonField(form.elements.where, "The where filter");
  if (where !== undefined) body.where = where;
  const min = form.elements.min_relevance.value.trim();
  if (min !== "") body.min_relevance = Number(min);
  if (form.elements.rerank.value) body.rerank = form.elements.rerank.value;
  return body;
}

function whyTable(why) {
  const channels = Object.entries(why ?? {});
  if (!channels.length) return null;
  return h(
    "table",
    { class: "why" },
    h("caption", { class: "sr-only" }, "Per-channel ranks and scores"),
    h(
      "thead",
      null,
      h("tr", null, ["channel", "rank", "score", "phrases"].map((c) => h("th", { scope: "col" }, c))),
    ),
    h(
      "tbody",
      null,
      channels.map(([name, info]) =>
        h(
          "tr",
          null,
          h("th", { scope: "row" }, name),
          h("td", null, info && info.rank != null ? String(info.rank) : "–"),
          h("td", null, fmtNum(info ? info.score : null)),
          h("td", null, (info && info.phrases ? info.phrases : []).join(", ")),
        ),
      ),
    ),
  );
}

function citation(hit) {
  const parts = [];
  if (hit.source) parts.push(`source ${hit.source}`);
  const where = fmtPosition(hit.position);
  if (where) parts.push(where);
  if (hit.event_time != null) parts.push(`event ${fmtTime(hit.event_time)}`);
  return parts.join(" · ");
}

function hitItem(hit, rank) {
  const href = `#/memory/${encodeURIComponent(hit.id)}`;
  const relevance = typeof hit.relevance === "number" ? hit.relevance : null;
  const item = h(
    "li",
    { class: "hit" },
    h(
      "div",
      { class: "hit-head" },
      h("span", { class: "rank" }, `${rank}.`),
      h("a", { href, class: "hit-link" }, `Memory #${hit.id}`),
      relevance == null
        ? null
        : h("meter", { min: "0", max: "1", value: String(relevance), "aria-label": "relevance" }),
      h("span", { class: "num" }, `relevance ${fmtNum(relevance)}`),
      h("span", { class: "muted num" }, `score ${fmtNum(hit.score, 4)}`),
      hit.namespace ? h("span", { class: "chip" }, hit.namespace) : null,
    ),
    h("p", { class: "hit-text" }, hit.text ?? ""),
    h("p", { class: "cite muted" }, citation(hit)),
    whyTable(hit.why),
  );
  item.addEventListener("click", (event) => {
    if (event.target.closest("a, button, summary") || String(window.getSelection() ?? "")) return;
    location.hash = href;
  });
  return item;
}

function render(answer) {
  const hits = Array.isArray(answer.hits) ? answer.hits : [];
  const summary = answer.abstain
    ? h(
        "p",
        { class: "abstain", role: "status" },
        h("strong", null, "Abstained"),
        answer.reason ? `: ${answer.reason}` : ": nothing relevant enough.",
      )
    : h("p", { class: "muted", role: "status" }, hits.length === 1 ? "1 hit" : `${hits.length} hits`);
  fill(
    results,
    summary,
    hits.length ? h("ol", { class: "hits" }, hits.map((hit, i) => hitItem(hit, i + 1))) : null,
    !hits.length && !answer.abstain ? h("p", { class: "empty" }, "No memory matched.") : null,
  );
}

async function run(body) {
  hush(msg);
  last = body;
  stale = false;
  try {
    render(await api("v1/recall", { method: "POST", body }));
  } catch (err) {
    fill(results);
    sayError(msg, err);
  }
}

async function submit(event) {
  event.preventDefault();
  let body;
  try {
    body = request();
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    say(msg, err.message, "error");
    return;
  }
  await busy(form, () => run(body));
}

export function init() {
  form = $("#recall-form");
  msg = $("#view-recall [data-msg]");
  results = $("#recall-results");
  form.addEventListener("submit", submit);
}

/** The last recall is out of date (a memory was forgotten): run it again when shown. */
export function invalidate() {
  stale = true;
}

export function show() {
  if (stale && last) run(last);
}

export function reset() {
  last = null;
  stale = false;
  hush(msg);
  fill(results);
}
