// Uploading files as an ingest job, watching its progress, and the recent jobs.

import { api } from "./api.js";
import { $, dl, fill, fmtBytes, fmtNum, fmtTime, h, table } from "./dom.js";
import { busy, hush, say, sayError } from "./ui.js";

const POLL_MS = 600;
const FINAL = new Set(["done", "failed"]);

let form;
let msg;
let panel;
let list;
let watching = null;
let timer = null;

function progress(job) {
  const records = Number(job.records ?? 0);
  const done = Number(job.done ?? 0);
  const bar = h("progress", { max: String(Math.max(records, 1)), "aria-label": "records ingested" });
  if (records > 0 || FINAL.has(job.state)) bar.value = FINAL.has(job.state) && !records ? 1 : done;
  return h(
    "div",
    { class: "progress" },
    bar,
    h("span", { class: "num" }, records ? `${fmtNum(done)} / ${fmtNum(records)} records` : "counting records…"),
  );
}

function fileTable(files) {
  if (!Array.isArray(files) || !files.length) return null;
  return table(
    "Files",
    ["file", "size", "records", "done", "added", "merged", "skipped", "error"],
    files.map((f) => [
      f.name ?? "?",
      fmtBytes(f.bytes),
      fmtNum(f.records),
      fmtNum(f.done),
      fmtNum(f.added),
      fmtNum(f.merged),
      fmtNum(f.skipped),
      f.error ? h("span", { class: "error-text" }, f.error) : "",
    ]),
  );
}

function fileProblems(files) {
  const failed = (files ?? []).filter((f) => f.error).length;
  if (!failed) return null;
  const text = failed === 1 ? "1 file could not be ingested" : `${failed} files could not be ingested`;
  return h("p", { class: "msg error" }, `${text}: see the error column below.`);
}

function renderJob(job) {
  fill(
    panel,
    h(
      "article",
      { class: "job panel", "aria-label": "ingest job" },
      h(
        "div",
        { class: "heading-row" },
        h("h2", null, "Job ", h("code", null, String(job.id ?? "").slice(0, 12))),
        h("span", { class: `badge state-${job.state}`, "data-state": job.state }, job.state ?? "?"),
      ),
      progress(job),
      job.error ? h("p", { class: "msg error" }, `The job failed: ${job.error}`) : null,
      fileProblems(job.files),
      dl([
        ["namespace", job.namespace],
        ["created", fmtTime(job.created)],
        ["started", job.started == null ? null : fmtTime(job.started)],
        ["finished", job.finished == null ? null : fmtTime(job.finished)],
        ["attempts", job.attempts == null ? null : String(job.attempts)],
      ]),
      fileTable(job.files),
    ),
  );
}

function stopWatching() {
  clearTimeout(timer);
  timer = null;
  watching = null;
}

async function poll(id) {
  if (watching !== id) return;
  let job;
  try {
    job = await api(`v1/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    if (watching !== id) return;
    stopWatching();
    sayError(msg, err);
    return;
  }
  if (watching !== id) return;
  renderJob(job);
  if (FINAL.has(job.state)) {
    stopWatching();
    refreshJobs();
  } else timer = setTimeout(() => poll(id), POLL_MS);
}

function watch(job) {
  stopWatching();
  hush(msg);
  renderJob(job);
  if (FINAL.has(job.state)) return;
  watching = job.id;
  timer = setTimeout(() => poll(job.id), POLL_MS);
}

function jobRow(job) {
  const open = h("button", { type: "button", class: "link" }, String(job.id ?? "").slice(0, 12));
  open.setAttribute("aria-label", `Show job ${job.id}`);
  open.addEventListener("click", () => watch(job));
  const names = (job.files ?? []).map((f) => f.name).join(", ");
  return [
    open,
    h("span", { class: `badge state-${job.state}` }, job.state ?? "?"),
    job.namespace ?? "",
    `${fmtNum(job.done ?? 0)} / ${fmtNum(job.records ?? 0)}`,
    names,
    fmtTime(job.created),
  ];
}

export async function refreshJobs() {
  try {
    const answer = await api("v1/jobs");
    const jobs = Array.isArray(answer) ? answer : (answer?.jobs ?? []);
    if (!jobs.length) {
      fill(list, h("p", { class: "muted" }, "No jobs yet."));
      return;
    }
    fill(
      list,
      table(null, ["job", "state", "namespace", "records", "files", "created"], jobs.map(jobRow)),
    );
  } catch (err) {
    fill(list);
    const p = h("p", { class: "msg error" });
    sayError(p, err);
    list.append(p);
  }
}

async function submit(event) {
  event.preventDefault();
  hush(msg);
  const files = form.elements.files.files;
  if (!files.length) {
    say(msg, "Choose at least one file.", "error");
    return;
  }
  const data = new FormData();
  for (const file of files) data.append("files", file, file.name);
  const namespace = form.elements.namespace.value.trim();
  if (namespace) data.append("namespace", namespace);
  await busy(form, async () => {
    try {
      const job = await api("v1/ingest", { method: "POST", form: data });
      form.elements.files.value = "";
      watch(job);
      refreshJobs();
    } catch (err) {
      sayError(msg, err);
    }
  });
}

export function init() {
  form = $("#upload-form");
  msg = $("#view-upload [data-msg]");
  panel = $("#job-panel");
  list = $("#jobs-list");
  form.addEventListener("submit", submit);
  $("#jobs-refresh").addEventListener("click", refreshJobs);
}

export function show() {
  refreshJobs();
}

export function reset() {
  stopWatching();
  hush(msg);
  fill(panel);
  fill(list);
}
