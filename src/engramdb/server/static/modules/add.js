// Adding a text: what recognition decided for each of its chunks.

import { api } from "./api.js";
import { $, fill, h } from "./dom.js";
import { InputError, busy, hush, jsonField, say, sayError, trimmed } from "./ui.js";

const DECISIONS = {
  new: "stored as",
  exact: "same text as",
  near: "merged into",
  skipped: "already recorded at that place in",
};

let form;
let msg;
let result;

function request() {
  const body = { text: form.elements.text.value };
  if (!body.text.trim()) throw new InputError("Write a text to add.");
  for (const name of ["namespace", "source"]) {
    const value = trimmed(form, name);
    if (value) body[name] = value;
  }
  const meta = jsonField(form.elements.meta, "The metadata");
  if (meta !== undefined) body.meta = meta;
  const when = trimmed(form, "event_time");
  if (when) body.event_time = /^-?\d+(\.\d+)?$/.test(when) ? Number(when) : when;
  return body;
}

function render(answer) {
  const counts = ["added", "exact", "near", "skipped"]
    .map((name) => `${answer[name] ?? 0} ${name}`)
    .join(", ");
  const memories = Array.isArray(answer.memories) ? answer.memories : [];
  fill(
    result,
    h("p", { role: "status" }, `In namespace ${answer.namespace ?? "?"}: ${counts}.`),
    h(
      "ul",
      { class: "decisions" },
      memories.map((m) =>
        h(
          "li",
          null,
          h("span", { class: `badge decision-${m.decision}` }, m.decision),
          ` ${DECISIONS[m.decision] ?? ""} `,
          m.id == null ? null : h("a", { href: `#/memory/${encodeURIComponent(m.id)}` }, `Memory #${m.id}`),
          memories.length > 1 && m.input != null ? h("span", { class: "muted" }, ` (item ${m.input})`) : null,
        ),
      ),
    ),
  );
}

async function submit(event) {
  event.preventDefault();
  hush(msg);
  let body;
  try {
    body = request();
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    say(msg, err.message, "error");
    return;
  }
  await busy(form, async () => {
    try {
      render(await api("v1/memories", { method: "POST", body }));
      form.elements.text.value = "";
    } catch (err) {
      sayError(msg, err);
    }
  });
}

export function init() {
  form = $("#add-form");
  msg = $("#view-add [data-msg]");
  result = $("#add-result");
  form.addEventListener("submit", submit);
}

export function reset() {
  hush(msg);
  fill(result);
}
