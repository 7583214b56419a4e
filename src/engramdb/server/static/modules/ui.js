// Small pieces every view uses: messages, busy buttons, JSON fields, the shared notice.

import { describe } from "./api.js";

/** Show text in a view's message line; kind is "error", "ok" or "info". */
export function say(el, text, kind = "info") {
  el.textContent = text;
  el.className = `msg ${kind}`;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.hidden = false;
}

export function sayError(el, err) {
  say(el, describe(err), "error");
}

export function hush(el) {
  el.hidden = true;
  el.textContent = "";
}

/** Disable a form's submit button (and mark the form busy) while work runs. */
export async function busy(form, work) {
  const button = form.querySelector('button[type="submit"]');
  form.setAttribute("aria-busy", "true");
  if (button) button.disabled = true;
  try {
    return await work();
  } finally {
    form.removeAttribute("aria-busy");
    if (button) button.disabled = false;
  }
}

export class InputError extends Error {}

/** The JSON in a text field, or undefined when it is empty; an object when `object`. */
export function jsonField(field, label, { object = true } = {}) {
  const text = field.value.trim();
  if (!text) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${label} is not valid JSON: ${err.message}`);
  }
  if (object && (value === null || typeof value !== "object" || Array.isArray(value))) {
    throw new InputError(`${label} must be a JSON object, like {"team": "infra"}.`);
  }
  return value;
}

let noticeTimer = null;

/** A short page-wide note (e.g. "Memory #3 forgotten."). */
export function notice(text) {
  const el = document.getElementById("notice");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    el.hidden = true;
  }, 6000);
}

export function trimmed(form, name) {
  const field = form.elements.namedItem(name);
  return field ? field.value.trim() : "";
}
