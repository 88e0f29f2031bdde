// DOM helpers: every piece of data becomes a text node or an attribute value, never markup.
const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) throw new Error("event handlers go through addEventListener");
    el.setAttribute(k, v === true ? "" : String(v));
  }
}

// h("td", {class: "num"}, "12 B"): an element whose children are nodes or plain text
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  return append(el, children);
}

export function button(label, onClick, attrs) {
  const b = h("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", onClick);
  return b;
}

// a labelled number on a dashboard
export function card(label, value, id) {
  return h("div", { class: "card", id },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// names may hold control characters: show them as visible escapes, keep the text otherwise.
// C0 and C1 controls as \xNN; the invisible direction marks and overrides (U+061C, U+200E,
// U+200F, U+202A to U+202E, U+2066 to U+2069) as \uNNNN, or "cod\u202Etxt.exe" would show
// as "codexe.txt": a name from another tenant that reads as something else.
export function printable(name) {
  return String(name)
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
      `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .replace(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) =>
      `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(n) {
  let v = Number(n) || 0;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

export function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(Number(seconds) * 1000);
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toLocaleString();
}
