// One memory: its text, count, sightings, metadata and graph neighbours; forgetting it.

import { api } from "./api.js";
import { $, dl, fill, fmtNum, fmtPosition, fmtTime, fmtValue, h, table } from "./dom.js";
import { hush, notice, sayError } from "./ui.js";

let ctx;
let heading;
let msg;
let body;
let token = 0;

function sightings(list) {
  if (!Array.isArray(list) || !list.length) return h("p", { class: "muted" }, "No sightings.");
  return table(
    null,
    ["kind", "source", "position", "event time", "seen", "score"],
    list.map((s) => [
      s.kind ?? "–",
      s.source ?? "–",
      fmtPosition(s.position) || "–",
      fmtTime(s.event_time),
      fmtTime(s.seen_time),
      fmtNum(s.score),
    ]),
  );
}

function metadata(meta) {
  const entries = Object.entries(meta ?? {});
  if (!entries.length) return h("p", { class: "muted" }, "No metadata.");
  return dl(entries.map(([k, v]) => [k, fmtValue(v)]), "facts meta");
}

function neighbourList(result) {
  if (result.status === "rejected") {
    const p = h("p", { class: "msg error" });
    sayError(p, result.reason);
    return p;
  }
  const answer = result.value ?? {};
  if (answer.graph === false) {
    return h("p", { class: "muted" }, "The memory graph is off for this store.");
  }
  const list = Array.isArray(answer.neighbours) ? answer.neighbours : [];
  if (!list.length) return h("p", { class: "muted" }, "No neighbours share a phrase with it.");
  return h(
    "ul",
    { class: "neighbours" },
    list.map((n) =>
      h(
        "li",
        null,
        h("a", { href: `#/memory/${encodeURIComponent(n.id)}` }, `Memory #${n.id}`),
        " ",
        (n.phrases ?? []).map((p) => h("span", { class: "chip" }, p)),
        h("p", { class: "hit-text" }, n.text ?? ""),
      ),
    ),
  );
}

async function forget(id, button) {
  if (!window.confirm(`Forget memory #${id}? This cannot be undone.`)) return;
  button.disabled = true;
  try {
    await api(`v1/memories/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    button.disabled = false;
    sayError(msg, err);
    return;
  }
  notice(`Memory #${id} forgotten.`);
  ctx.forgotten(id);
}

function render(m, neighbours) {
  const forgetButton = h("button", { type: "button", class: "danger" }, "Forget");
  forgetButton.addEventListener("click", () => forget(m.id, forgetButton));
  if (!ctx.canWrite()) forgetButton.hidden = true;
  fill(
    body,
    h("p", { class: "memtext" }, m.text ?? ""),
    dl([
      ["namespace", m.namespace],
      ["seen", m.count == null ? null : m.count === 1 ? "once" : `${m.count} times`],
      ["source", m.source],
      ["position", fmtPosition(m.position)],
      ["event time", m.event_time == null ? null : fmtTime(m.event_time)],
      ["ingested", m.ingest_time == null ? null : fmtTime(m.ingest_time)],
    ]),
    h("div", { class: "actions" }, forgetButton),
    h("h2", null, "Sightings"),
    sightings(m.sightings),
    h("h2", null, "Metadata"),
    metadata(m.meta),
    h("h2", null, "Graph neighbours"),
    neighbourList(neighbours),
  );
}

export async function show(id) {
  const mine = ++token;
  heading.textContent = `Memory #${id}`;
  hush(msg);
  fill(body, h("p", { class: "muted" }, "Loading…"));
  const path = `v1/memories/${encodeURIComponent(id)}`;
  const [memory, neighbours] = await Promise.allSettled([
    api(path),
    api(`${path}/neighbours`),
  ]);
  if (mine !== token) return;
  if (memory.status === "rejected") {
    fill(body);
    sayError(msg, memory.reason);
    return;
  }
  render(memory.value, neighbours);
}

export function init(context) {
  ctx = context;
  heading = $("#memory-h");
  msg = $("#view-memory [data-msg]");
  body = $("#memory-body");
}
