// Building DOM nodes without HTML strings: every text goes in as a text node.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function setProps(el, props) {
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value == null || value === false) continue;
    if (name === "class") el.setAttribute("class", value);
    else if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/x", class: "c"}, "text", child, [more]). */
export function h(tag, props, ...children) {
  return append(setProps(document.createElement(tag), props), children);
}

/** An SVG element, same calling convention as h(). */
export function svg(tag, props, ...children) {
  return append(setProps(document.createElementNS(SVG_NS, tag), props), children);
}

/** Replace the children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`missing element ${selector}`);
  return el;
}

// -- formatting ---------------------------------------------------------------------------------

/** Epoch seconds as "2024-05-02 10:00:00 UTC" ("–" when missing). */
export function fmtTime(epoch) {
  if (typeof epoch !== "number" || !Number.isFinite(epoch)) return "–";
  const iso = new Date(epoch * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

export function fmtNum(value, digits = 3) {
  if (value == null) return "–";
  if (typeof value === "boolean") return String(value);
  if (typeof value !== "number") return String(value);
  if (Number.isNaN(value)) return "nan";
  if (Number.isInteger(value)) return value.toLocaleString("en");
  if (Math.abs(value) >= 1000) return value.toLocaleString("en", { maximumFractionDigits: 1 });
  if (value !== 0 && Math.abs(value) < 10 ** -digits) return value.toPrecision(2);
  return value.toFixed(digits);
}

export function fmtBytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** A memory's place in its document: "notes.md · #3 · chars 0–40". */
export function fmtPosition(pos) {
  if (!pos || typeof pos !== "object") return "";
  const parts = [];
  if (pos.document) parts.push(String(pos.document));
  if (pos.ordinal != null) parts.push(`#${pos.ordinal}`);
  if (pos.start != null && pos.end != null) parts.push(`chars ${pos.start}–${pos.end}`);
  return parts.join(" · ");
}

/** Any JSON value as compact text (for metadata values). */
export function fmtValue(value) {
  if (value == null) return "null";
  if (typeof value === "string") return value;
  if (typeof value === "number") return fmtNum(value, 4);
  return JSON.stringify(value);
}

/** A definition list from [term, value] pairs; pairs with an empty value are left out. */
export function dl(pairs, cls = "facts") {
  const items = [];
  for (const [term, value] of pairs) {
    if (value == null || value === "") continue;
    items.push(h("dt", null, term), h("dd", null, value));
  }
  return h("dl", { class: cls }, items);
}

/** A table with a caption, header cells and rows of cells (strings or nodes). */
export function table(caption, header, rows, cls = "grid") {
  return h(
    "table",
    { class: cls },
    caption ? h("caption", null, caption) : null,
    h("thead", null, h("tr", null, header.map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      rows.map((row) =>
        h(
          "tr",
          null,
          row.map((cell, i) => (i === 0 ? h("th", { scope: "row" }, cell) : h("td", null, cell))),
        ),
      ),
    ),
  );
}
