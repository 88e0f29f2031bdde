// The dashboard: logical vs stored bytes and what dedup saved, now (/usage, per type too) and
// over time (/usage/history: samples the API keeps in the metadata store, plus the live value
// as the last point), per top-level folder; for admins the cluster (admin-dashboard.js).
// Refreshed every few seconds without a reload.
import { call, query } from "./api.js";
import { adminSections } from "./admin-dashboard.js";
import { figure, lineFigure, usageSeries } from "./chart.js";
import { button, bytes, card, clear, h, printable } from "./dom.js";

export const REFRESH_MS = 5000;

const RANGES = [["1 hour", 3600], ["1 day", 86400], ["7 days", 7 * 86400], ["90 days", 90 * 86400]];
const RANGE_KEY = "dfs-console-range";

function rangeSeconds() {
  const chosen = Number(sessionStorage.getItem(RANGE_KEY));
  return RANGES.some(([, s]) => s === chosen) ? chosen : RANGES[1][1];
}

function rangePicker(ctx) {
  const select = h("select", { id: "history-range" },
    RANGES.map(([label, s]) => h("option", { value: s, selected: s === rangeSeconds() }, label)));
  select.addEventListener("change", () => {
    sessionStorage.setItem(RANGE_KEY, select.value);
    ctx.rerender();
  });
  return h("div", { class: "range" }, h("label", { for: "history-range" }, "History of the last"),
    select, button("Refresh now", () => ctx.rerender()));
}

function historyHint(history) {
  const minutes = Math.round(Number(history.interval) / 60);
  const every = minutes >= 1 ? `${minutes} min` : `${Number(history.interval)} s`;
  return h("p", { class: "hint" }, `The API samples these counters every ${every}; ` +
    `${history.samples.length} samples in this range, the last point is now.`);
}

function usageSection(u, byType, history) {
  const types = Object.entries(byType.usage || {})
    .sort((a, b) => b[1].logical_bytes - a[1].logical_bytes).slice(0, 8)
    .map(([t, c]) => ({ label: t || "(none)", value: c.logical_bytes, cls: "logical" }));
  return h("section", { "aria-labelledby": "usage-title", id: "usage" },
    h("h3", { id: "usage-title" }, "Your storage"),
    h("div", { class: "cards" },
      card("Objects", String(u.objects), "usage-objects"),
      card("Logical", bytes(u.logical_bytes), "usage-logical"),
      card("Stored", bytes(u.stored_bytes), "usage-stored"),
      card("Dedup saved", bytes(u.saved_bytes), "usage-saved")),
    figure("Logical vs stored bytes", [
      { label: "logical", value: u.logical_bytes, cls: "logical" },
      { label: "stored", value: u.stored_bytes, cls: "stored" },
      { label: "saved by dedup", value: u.saved_bytes, cls: "saved" },
    ]),
    lineFigure("Logical, stored and saved bytes over time",
      usageSeries(history.samples, Date.now() / 1000, u), undefined, "usage-history"),
    historyHint(history),
    types.length ? figure("Logical bytes per file type", types) : null);
}

const FOLDER_BUCKETS = 4;

// logical bytes per top-level folder of the first few buckets the caller owns
async function foldersSection(tenant) {
  const { buckets } = await call("GET", "/buckets");
  const own = buckets.filter((b) => b.owner === tenant).slice(0, FOLDER_BUCKETS);
  const charts = await Promise.all(own.map(async (b) => {
    const path = `/buckets/${encodeURIComponent(b.name)}/usage?by=prefix`;
    const groups = Object.entries((await call("GET", path)).usage || {})
      .sort((x, y) => y[1].logical_bytes - x[1].logical_bytes).slice(0, 8)
      .map(([g, c]) => ({ label: g || "(top level)", value: c.logical_bytes, cls: "stored" }));
    return groups.length ? figure(`Logical bytes per folder of ${printable(b.name)}`, groups) : null;
  }));
  if (!charts.some((c) => c)) return null;
  return h("section", { "aria-labelledby": "folders-title", id: "folders" },
    h("h3", { id: "folders-title" }, "Per top-level folder"), charts);
}

export async function dashboardView(view, ctx) {
  ctx.refreshIn(REFRESH_MS); // first: a failed read is tried again too
  const since = Math.floor(Date.now() / 1000 - rangeSeconds());
  const [u, byType, folders, history] = await Promise.all([
    call("GET", "/usage"), call("GET", "/usage?by=type"), foldersSection(ctx.whoami.tenant),
    call("GET", `/usage/history${query({ since })}`),
  ]);
  const parts = [h("h2", {}, "Dashboard"), rangePicker(ctx), usageSection(u, byType, history), folders];
  if (ctx.whoami.role === "admin") parts.push(...await adminSections(since));
  clear(view).append(...parts.filter((p) => p));
}
