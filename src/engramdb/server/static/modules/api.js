// The REST client: the key, JSON in and out, and the error envelope turned into ApiError.

const KEY_SLOT = "engramdb.key";

export class ApiError extends Error {
  constructor({ status = 0, type = "Error", message = "", requestId = null, details = [] }) {
    super(message || `request failed (${status})`);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.requestId = requestId;
    this.details = details;
  }
}

let unauthorized = () => {};
let memoryKey = null;

/** Called (with the error) whenever the server answers 401. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function getKey() {
  try {
    return sessionStorage.getItem(KEY_SLOT);
  } catch {
    return null;
  }
}

export function setKey(key) {
  try {
    sessionStorage.setItem(KEY_SLOT, key);
  } catch {
    // storage disabled: the key lasts until the page is left
  }
  memoryKey = key;
}

export function clearKey() {
  try {
    sessionStorage.removeItem(KEY_SLOT);
  } catch {
    // nothing stored
  }
  memoryKey = null;
}

function currentKey() {
  return getKey() ?? memoryKey;
}

function detailLines(list) {
  if (!Array.isArray(list)) return [];
  return list.map((item) => {
    if (item && typeof item === "object") {
      const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
      const msg = item.msg ?? item.message ?? JSON.stringify(item);
      return where ? `${where}: ${msg}` : String(msg);
    }
    return String(item);
  });
}

function errorFrom(response, data) {
  const env = data && typeof data === "object" ? data.error : null;
  if (env && typeof env === "object") {
    const message = typeof env.message === "string" ? env.message : JSON.stringify(env.message);
    return new ApiError({
      status: env.status ?? response.status,
      type: env.type ?? "Error",
      message,
      requestId: env.request_id ?? response.headers.get("x-request-id"),
      details: detailLines(env.details ?? env.errors ?? env.detail),
    });
  }
  let message = `${response.status} ${response.statusText}`.trim();
  if (data && typeof data === "object" && "detail" in data) {
    message = typeof data.detail === "string" ? data.detail : detailLines(data.detail).join("; ");
  }
  return new ApiError({
    status: response.status,
    message,
    requestId: response.headers.get("x-request-id"),
  });
}

/**
 * Call the API: api("v1/recall", {method: "POST", body: {...}}) → the parsed JSON.
 * `form` sends a FormData instead of JSON. Throws ApiError on a network fault or non-2xx.
 */
export async function api(path, { method = "GET", body, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = currentKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError({ type: "Network", message: "The server could not be reached." });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = errorFrom(response, data);
    if (response.status === 401) unauthorized(error);
    throw error;
  }
  return data;
}

/** A one-line, human-readable account of any error. */
export function describe(err) {
  if (!(err instanceof ApiError)) return err && err.message ? err.message : String(err);
  let text = err.message;
  const unsaid = err.details.filter((line) => !text.includes(line));
  if (unsaid.length) text += ` (${unsaid.join("; ")})`;
  if (err.status === 401) text = `Not signed in: ${text}`;
  else if (err.status === 403) text = `Not allowed: ${text}`;
  else if (err.status >= 500) {
    text = `The server failed: ${text}`;
    if (err.requestId) text += ` [request ${err.requestId}]`;
  }
  return text;
}
