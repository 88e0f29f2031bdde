// Bar and line charts as inline SVG built with DOM calls (no library, no inline style:
// CSP-safe).
import { bytes, h, printable, svg } from "./dom.js";

// bars: [{label, value, cls}] drawn as horizontal bars scaled to the largest value
export function barChart(title, bars, scale) {
  const width = 480;
  const rowH = 34;
  const labelW = 150;
  const height = bars.length * rowH + 16;
  const max = scale || Math.max(1, ...bars.map((b) => Number(b.value) || 0));
  // room after the longest bar for its text (about 7 px a character at 12 px)
  const room = Math.min(240, Math.max(90, 7 * Math.max(...bars.map((b) => String(b.text ?? bytes(b.value)).length))));
  const chart = svg("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title,
  }, svg("title", {}, title));
  bars.forEach((b, i) => {
    const y = 8 + i * rowH;
    const w = Math.max(1, Math.min(1, (Number(b.value) || 0) / max) * (width - labelW - room));
    chart.append(
      svg("text", { x: 0, y: y + 17 }, printable(b.label)),
      svg("rect", { x: labelW, y, width: w, height: rowH - 10, class: b.cls || "logical" }),
      svg("text", { x: labelW + w + 6, y: y + 17 }, b.text ?? bytes(b.value)));
  });
  chart.append(svg("line", { class: "axis", x1: labelW, y1: 4, x2: labelW, y2: height - 4 }));
  return chart;
}

// a chart with its title shown above it (bars scaled to ``scale``, or to the largest)
export function figure(title, bars, scale, id) {
  return h("figure", { class: "figure", id }, h("figcaption", {}, title), barChart(title, bars, scale));
}

// the time axis' labels: the time of day, with the date when the span is a day or more
function timeLabel(t, span) {
  const d = new Date(t * 1000);
  return span >= 86400 ? d.toLocaleDateString() + " " + d.toLocaleTimeString() : d.toLocaleTimeString();
}

// series: [{label, cls, points: [[unixSeconds, value], ...]}] as lines over time, the y axis
// from 0 to the largest value (format(v) labels it: bytes by default)
export function lineChart(title, series, format = bytes) {
  const [width, height, left, bottom, top] = [560, 220, 78, 26, 10];
  const all = series.flatMap((s) => s.points);
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(t0 + 1, ...all.map((p) => p[0]));
  const max = Math.max(1, ...all.map((p) => Number(p[1]) || 0));
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - 8);
  const y = (v) => top + (1 - (Number(v) || 0) / max) * (height - top - bottom);
  const chart = svg("svg", {
    class: "chart line-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title,
  }, svg("title", {}, title));
  for (const v of [0, max / 2, max]) {
    chart.append(svg("line", { class: "grid", x1: left, x2: width - 8, y1: y(v), y2: y(v) }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)));
  }
  chart.append(
    svg("text", { x: left, y: height - 6 }, timeLabel(t0, t1 - t0)),
    svg("text", { x: width - 8, y: height - 6, "text-anchor": "end" }, timeLabel(t1, t1 - t0)));
  for (const s of series) {
    const pts = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { class: `series ${s.cls}`, points: pts }));
    const last = s.points[s.points.length - 1];
    if (last) chart.append(svg("circle", { class: `series ${s.cls}`, cx: x(last[0]), cy: y(last[1]), r: 3 }));
  }
  return chart;
}

// a line chart with its title and a legend naming each series and its latest value
export function lineFigure(title, series, format = bytes, id) {
  const legend = h("ul", { class: "legend" }, series.map((s) => {
    const last = s.points[s.points.length - 1];
    return h("li", {}, h("span", { class: `swatch ${s.cls}`, "aria-hidden": "true" }),
      `${s.label}: ${last ? format(last[1]) : "-"}`);
  }));
  return h("figure", { class: "figure", id }, h("figcaption", {}, title),
    lineChart(title, series, format), legend);
}

// usage samples [{at, logical_bytes, stored_bytes, saved_bytes}] (oldest first) and the live
// counters as the last point: logical, stored and saved as three series
export function usageSeries(samples, now, live) {
  const points = [...samples.map((s) => [s.at, s]), [now, live]];
  const line = (label, cls, field) => ({ label, cls, points: points.map(([t, s]) => [t, s[field]]) });
  return [line("logical", "logical", "logical_bytes"), line("stored", "stored", "stored_bytes"),
    line("saved by dedup", "saved", "saved_bytes")];
}
