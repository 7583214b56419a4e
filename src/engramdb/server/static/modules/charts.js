// Small inline-SVG charts: grouped bars and lines over categories. Colours come from app.css.

import { fmtNum, h, svg } from "./dom.js";

const W = 560;
const H = 250;
const M = { top: 16, right: 16, bottom: 44, left: 52 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value * 0.999) return m * step;
  return 10 * step;
}

function frame(title) {
  return svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": title,
    preserveAspectRatio: "xMidYMid meet",
  });
}

function tick(value) {
  return String(Number(value.toFixed(3)));
}

function axis(root, top) {
  const plotH = H - M.top - M.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const value = (top * i) / 4;
    const y = M.top + plotH - (plotH * i) / 4;
    root.append(
      svg("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, class: "gridline" }),
      svg("text", { x: M.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, tick(value)),
    );
  }
}

function scale(value, top) {
  const plotH = H - M.top - M.bottom;
  return M.top + plotH - (plotH * Math.max(0, Math.min(value, top))) / top;
}

function legend(series) {
  if (series.length < 2) return null;
  return h(
    "ul",
    { class: "legend" },
    series.map((s, i) => h("li", null, h("span", { class: `swatch s${i % 6}`, "aria-hidden": "true" }), s.name)),
  );
}

function finite(series) {
  return series.flatMap((s) => s.values).filter((v) => typeof v === "number" && Number.isFinite(v));
}

/**
 * Grouped bars: one group per category, one bar per series.
 * barChart({title, categories, series: [{name, values}]}) → a <figure>.
 */
export function barChart({ title, categories, series, max }) {
  const top = max ?? niceMax(Math.max(0, ...finite(series)));
  const root = frame(title);
  axis(root, top);
  const plotW = W - M.left - M.right;
  const group = plotW / Math.max(categories.length, 1);
  const bar = Math.min(48, (group * 0.8) / Math.max(series.length, 1));
  categories.forEach((category, c) => {
    const x0 = M.left + group * c + (group - bar * series.length) / 2;
    series.forEach((s, i) => {
      const value = s.values[c];
      if (typeof value !== "number" || !Number.isFinite(value)) return;
      const y = scale(value, top);
      const label = `${category}${series.length > 1 ? ` ${s.name}` : ""}: ${fmtNum(value, 4)}`;
      root.append(
        svg(
          "rect",
          { x: x0 + bar * i, y, width: Math.max(bar - 2, 1), height: scale(0, top) - y, class: `bar s${i % 6}` },
          svg("title", null, label),
        ),
      );
      if (series.length <= 2) {
        root.append(
          svg("text", { x: x0 + bar * i + bar / 2 - 1, y: y - 3, class: "value", "text-anchor": "middle" }, fmtNum(value, 3)),
        );
      }
    });
    root.append(
      svg("text", { x: M.left + group * c + group / 2, y: H - M.bottom + 16, class: "tick", "text-anchor": "middle" }, category),
    );
  });
  return h("figure", { class: "figure" }, root, h("figcaption", null, title), legend(series));
}

/**
 * Lines over evenly spaced categories (k, distance bins, distractor counts).
 * lineChart({title, xs, series: [{name, values}], max, xLabel}) → a <figure>.
 */
export function lineChart({ title, xs, series, max, xLabel }) {
  const top = max ?? niceMax(Math.max(0, ...finite(series)));
  const root = frame(title);
  axis(root, top);
  const plotW = W - M.left - M.right;
  const step = xs.length > 1 ? plotW / (xs.length - 1) : 0;
  const xAt = (i) => M.left + (xs.length > 1 ? step * i : plotW / 2);
  xs.forEach((x, i) => {
    root.append(svg("text", { x: xAt(i), y: H - M.bottom + 16, class: "tick", "text-anchor": "middle" }, String(x)));
  });
  if (xLabel) {
    root.append(svg("text", { x: M.left + plotW / 2, y: H - 6, class: "tick", "text-anchor": "middle" }, xLabel));
  }
  series.forEach((s, i) => {
    const points = s.values
      .map((v, j) => (typeof v === "number" && Number.isFinite(v) ? [xAt(j), scale(v, top), v, j] : null))
      .filter(Boolean);
    if (!points.length) return;
    root.append(svg("polyline", { points: points.map(([x, y]) => `${x},${y}`).join(" "), class: `line s${i % 6}` }));
    for (const [x, y, v, j] of points) {
      root.append(svg("circle", { cx: x, cy: y, r: 3, class: `dot s${i % 6}` }, svg("title", null, `${s.name} at ${xs[j]}: ${fmtNum(v, 4)}`)));
    }
  });
  return h("figure", { class: "figure" }, root, h("figcaption", null, title), legend(series));
}
