// The eval-report viewer: a report.json from `engram eval --out`, read locally, as tables and plots.

import { barChart, lineChart } from "./charts.js";
import { $, dl, fill, fmtNum, h, table } from "./dom.js";
import { hush, say } from "./ui.js";

const REQUIRED = ["kind", "metrics", "latency_ms", "config"];
const LATENCY = ["p50", "p99", "mean", "max", "n"];
const LINE_SERIES = [
  ["retention", "distractors", "Retention: cued recall@1 / recognition AUC", "distractors added"],
  ["sort", "bins", "SORT accuracy by distance", "distance between segments"],
];

let msg;
let body;

class ReportError extends Error {}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A channel's metrics with nested groups flattened: abstention/precision. */
function flat(metrics, prefix = "", out = {}) {
  for (const [name, value] of Object.entries(metrics ?? {})) {
    const key = prefix ? `${prefix}/${name}` : name;
    if (isObject(value)) flat(value, key, out);
    else out[key] = value;
  }
  return out;
}

export function parseReport(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ReportError(`The file is not JSON: ${err.message}`);
  }
  if (!isObject(data)) throw new ReportError("Not an eval report: expected a JSON object.");
  const missing = REQUIRED.filter((key) => !(key in data));
  if (missing.length) throw new ReportError(`Not an eval report: missing ${missing.join(", ")}.`);
  if (!isObject(data.metrics) || !Object.values(data.metrics).every(isObject)) {
    throw new ReportError("Not an eval report: 'metrics' must map each channel to its metrics.");
  }
  return data;
}

function summary(report) {
  const data = isObject(report.dataset) ? report.dataset : {};
  const cfg = isObject(report.config) ? report.config : {};
  const ing = isObject(report.ingest) ? report.ingest : {};
  const counts = Object.entries(isObject(data.counts) ? data.counts : {})
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => `${k} ${fmtNum(v)}`)
    .join(", ");
  const ingest = Object.keys(ing).length
    ? `${fmtNum(ing.records)} records → ${fmtNum(ing.memories)} memories in ${fmtNum(ing.seconds, 1)} s (${fmtNum(ing.records_per_s, 1)} records/s)`
    : null;
  return dl([
    ["kind", String(report.kind)],
    ["data set", [data.name, data.path ? `(${data.path})` : null].filter(Boolean).join(" ")],
    ["sha256", data.sha256 ? `${String(data.sha256).slice(0, 12)}…` : null],
    ["counts", counts],
    ["created", report.created],
    ["embedder", cfg.embedder],
    ["channels", Array.isArray(cfg.channels) ? cfg.channels.join(", ") : null],
    ["seed / limit", `${cfg.seed ?? "–"} / ${cfg.limit ?? "–"}`],
    ["ingest", ingest],
    ["engramdb", isObject(report.versions) ? report.versions.engramdb : null],
  ]);
}

function metricTable(channels, flats) {
  const names = [...new Set(channels.flatMap((c) => Object.keys(flats[c])))];
  return table(
    "Metrics per channel",
    ["metric", ...channels],
    names.map((name) => [name, ...channels.map((c) => fmtNum(flats[c][name], 4))]),
    "grid metrics",
  );
}

function metricChart(channels, flats) {
  const names = [...new Set(channels.flatMap((c) => Object.keys(flats[c])))].filter((name) =>
    channels.some((c) => typeof flats[c][name] === "number"),
  );
  if (!names.length) return null;
  const holder = h("div");
  const select = h("select", { id: "report-metric" }, names.map((n) => h("option", { value: n }, n)));
  select.value = names.includes("ndcg@10") ? "ndcg@10" : names[0];
  const draw = () => {
    const name = select.value;
    const values = channels.map((c) => (typeof flats[c][name] === "number" ? flats[c][name] : null));
    fill(holder, barChart({ title: `${name} per channel`, categories: channels, series: [{ name, values }] }));
  };
  select.addEventListener("change", draw);
  draw();
  return h("div", { class: "plot" }, h("label", { for: "report-metric" }, "Metric to plot "), select, holder);
}

function latency(report, channels) {
  const lat = isObject(report.latency_ms) ? report.latency_ms : {};
  const rows = channels.filter((c) => isObject(lat[c]));
  if (!rows.length) return [];
  const stats = LATENCY.filter((s) => rows.some((c) => s in lat[c]));
  const shown = ["p50", "p99"].filter((s) => stats.includes(s));
  return [
    h("h2", null, "Latency (ms per query)"),
    table(
      "Latency per channel (ms)",
      ["channel", ...stats],
      rows.map((c) => [c, ...stats.map((s) => fmtNum(lat[c][s], 2))]),
    ),
    shown.length
      ? barChart({
          title: "Latency per channel (ms)",
          categories: rows,
          series: shown.map((s) => ({ name: s, values: rows.map((c) => lat[c][s] ?? null) })),
        })
      : null,
  ];
}

function recallCurves(series) {
  const curves = isObject(series["recall@k"]) ? series["recall@k"] : null;
  if (!curves) return null;
  const entries = Object.entries(curves).filter(([, points]) => isObject(points));
  const ks = [...new Set(entries.flatMap(([, p]) => Object.keys(p)))].sort((a, b) => Number(a) - Number(b));
  if (!ks.length) return null;
  return lineChart({
    title: "recall@k by channel",
    xs: ks,
    xLabel: "k",
    max: 1,
    series: entries.map(([name, points]) => ({ name, values: ks.map((k) => points[k] ?? null) })),
  });
}

function needleGrids(series, channels) {
  const grid = isObject(series.needle) ? series.needle : null;
  if (!grid) return [];
  const depths = Array.isArray(grid.depths) ? grid.depths : [];
  const sizes = Array.isArray(grid.sizes) ? grid.sizes : [];
  return channels
    .filter((c) => Array.isArray(grid[c]))
    .map((c) =>
      table(
        `Needle recall@1, ${c} (rows: haystack size; columns: depth)`,
        ["size", ...depths.map((d) => `d=${typeof d === "number" ? d.toFixed(1) : d}`)],
        grid[c].map((row, i) => [
          `N=${fmtNum(sizes[i])}`,
          ...(Array.isArray(row) ? row : []).map((v) => heatCell(v)),
        ]),
        "grid heat",
      ),
    );
}

function heatCell(value) {
  const cell = h("span", { class: "heat" }, fmtNum(value, 2));
  if (typeof value === "number") cell.dataset.level = String(Math.round(Math.max(0, Math.min(1, value)) * 4));
  return cell;
}

function lineSeries(series) {
  return LINE_SERIES.map(([key, xKey, title, xLabel]) => {
    const data = isObject(series[key]) ? series[key] : null;
    if (!data || !Array.isArray(data[xKey])) return null;
    const lines = Object.entries(data).filter(([name, ys]) => name !== xKey && Array.isArray(ys));
    if (!lines.length) return null;
    return lineChart({
      title,
      xs: data[xKey].map((x) => (typeof x === "number" ? fmtNum(x) : String(x))),
      xLabel,
      max: 1,
      series: lines.map(([name, values]) => ({ name, values })),
    });
  }).filter(Boolean);
}

function render(report, fileName) {
  const channels = Object.keys(report.metrics);
  const flats = Object.fromEntries(channels.map((c) => [c, flat(report.metrics[c])]));
  const series = isObject(report.series) ? report.series : {};
  const curves = recallCurves(series);
  const needles = needleGrids(series, channels);
  const lines = lineSeries(series);
  fill(
    body,
    h("h2", null, `${report.kind} report `, h("span", { class: "muted" }, fileName)),
    summary(report),
    h("h2", null, "Metrics"),
    metricTable(channels, flats),
    metricChart(channels, flats),
    latency(report, channels),
    curves || needles.length || lines.length ? h("h2", null, "Series") : null,
    curves,
    needles,
    lines,
  );
}

async function load(event) {
  const file = event.target.files[0];
  hush(msg);
  if (!file) return;
  try {
    render(parseReport(await file.text()), file.name);
    say(msg, `Loaded ${file.name}.`, "ok");
  } catch (err) {
    fill(body);
    if (err instanceof ReportError) say(msg, err.message, "error");
    else {
      console.error(err);
      say(msg, `This report could not be shown: ${err.message}`, "error");
    }
  }
}

export function init() {
  msg = $("#view-report [data-msg]");
  body = $("#report-body");
  $("#report-form").addEventListener("submit", (event) => event.preventDefault());
  $("#report-file").addEventListener("change", load);
}
