// Namespaces and their counts, the embedder, the key, and the store's statistics.

import { api } from "./api.js";
import { $, dl, fill, fmtBytes, fmtNum, fmtValue, h, table } from "./dom.js";
import { hush, sayError } from "./ui.js";

let ctx;
let msg;
let body;

/** Nested statistics as "a.b" → value pairs. */
function flatten(value, prefix = "", out = []) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (/bytes$/.test(prefix) && typeof value === "number") out.push([prefix, fmtBytes(value)]);
  else out.push([prefix, fmtValue(value)]);
  return out;
}

function namespaceTable(namespaces) {
  const rows = Object.entries(namespaces ?? {}).sort((a, b) => b[1] - a[1]);
  if (!rows.length) return h("p", { class: "muted" }, "No memories yet.");
  const most = Math.max(1, ...rows.map(([, n]) => n));
  return table(
    "Memories per namespace",
    ["namespace", "memories", ""],
    rows.map(([name, count]) => [
      name,
      h("span", { class: "num" }, fmtNum(count)),
      h("meter", { min: "0", max: String(most), value: String(count), "aria-hidden": "true" }),
    ]),
  );
}

function keyFacts(who) {
  if (!who) return null;
  return dl([
    ["key", who.key ?? (who.keys_required ? "?" : "none (the store has no keys)")],
    ["namespaces", who.namespaces ? who.namespaces.join(", ") : "every namespace"],
    ["access", who.write ? "read-write" : "read-only"],
  ]);
}

export async function show() {
  hush(msg);
  let stats;
  try {
    stats = await api("v1/stats");
  } catch (err) {
    fill(body);
    sayError(msg, err);
    return;
  }
  ctx.namespacesSeen(Object.keys(stats.namespaces ?? {}));
  fill(
    body,
    dl([
      ["memories", fmtNum(stats.memories)],
      ["embedder", stats.embedder],
    ]),
    namespaceTable(stats.namespaces),
    h("h2", null, "This key"),
    keyFacts(ctx.whoami()),
    stats.store
      ? [h("h2", null, "Store"), dl(flatten(stats.store), "facts store")]
      : null,
  );
}

export function init(context) {
  ctx = context;
  msg = $("#view-stats [data-msg]");
  body = $("#stats-body");
  $("#stats-refresh").addEventListener("click", show);
}
