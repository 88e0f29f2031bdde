// Bar charts as inline SVG built with DOM calls (no library, no inline style: CSP-safe).
import { bytes, h, printable, svg } from "./dom.js";

// bars: [{label, value, cls}] drawn as horizontal bars scaled to the largest value
export function barChart(title, bars) {
  const width = 480;
  const rowH = 34;
  const labelW = 150;
  const height = bars.length * rowH + 16;
  const max = Math.max(1, ...bars.map((b) => Number(b.value) || 0));
  const chart = svg("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title,
  }, svg("title", {}, title));
  bars.forEach((b, i) => {
    const y = 8 + i * rowH;
    const w = Math.max(1, ((Number(b.value) || 0) / max) * (width - labelW - 90));
    chart.append(
      svg("text", { x: 0, y: y + 17 }, printable(b.label)),
      svg("rect", { x: labelW, y, width: w, height: rowH - 10, class: b.cls || "logical" }),
      svg("text", { x: labelW + w + 6, y: y + 17 }, b.text ?? bytes(b.value)));
  });
  chart.append(svg("line", { class: "axis", x1: labelW, y1: 4, x2: labelW, y2: height - 4 }));
  return chart;
}

// a chart with its title shown above it
export function figure(title, bars) {
  return h("figure", { class: "figure" }, h("figcaption", {}, title), barChart(title, bars));
}
