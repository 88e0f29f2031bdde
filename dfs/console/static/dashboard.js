// The dashboard: logical vs stored bytes and what dedup saved (/usage, per type too), and for
// admins the cluster's nodes (/nodes) and totals (/admin/stats). Refreshed every few seconds.
import { call } from "./api.js";
import { figure } from "./chart.js";
import { bytes, clear, h, printable, when } from "./dom.js";

export const REFRESH_MS = 5000;

function card(label, value, id) {
  return h("div", { class: "card", id },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function usageSection(u, byType) {
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
    types.length ? figure("Logical bytes per file type", types) : null);
}

function nodeRow(n, now) {
  const age = n.last_heartbeat ? Math.max(0, Math.round(now - Number(n.last_heartbeat))) : null;
  return h("tr", {},
    h("td", { class: "name" }, printable(n.node_id)),
    h("td", { class: n.live ? "live" : "down" }, n.live ? "live" : "down"),
    h("td", { class: "num" }, `${bytes(n.used_bytes)} / ${bytes(n.capacity_bytes)}`),
    h("td", { class: "num" }, age === null ? "" : `${age} s`),
    h("td", { class: "optional" }, printable(n.zone || "")),
    h("td", { class: "optional" }, printable(n.status || "")));
}

function adminSection(nodes, stats) {
  const now = Date.now() / 1000;
  const head = ["Node", "Liveness", "Used / capacity", "Heartbeat age", "Zone", "Status"];
  return h("section", { "aria-labelledby": "nodes-title", id: "nodes" },
    h("h3", { id: "nodes-title" }, "Cluster"),
    h("div", { class: "cards" },
      card("Live nodes", `${nodes.live} (replication ${nodes.replication_factor})`, "live-nodes"),
      card("All tenants: logical", bytes(stats.logical_bytes)),
      card("All tenants: stored", bytes(stats.stored_bytes)),
      card("Dedup ratio", Number(stats.dedup_ratio || 0).toFixed(2))),
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "sr-only" }, "Nodes"),
      h("thead", {}, h("tr", {}, head.map((t, i) =>
        h("th", { scope: "col", class: i >= 4 ? "optional" : (i >= 2 ? "num" : null) }, t)))),
      h("tbody", {}, nodes.nodes.map((n) => nodeRow(n, now))))),
    h("p", { class: "hint" }, `Updated ${when(now)}`));
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
  const [u, byType, folders] = await Promise.all([
    call("GET", "/usage"), call("GET", "/usage?by=type"), foldersSection(ctx.whoami.tenant),
  ]);
  const parts = [h("h2", {}, "Dashboard"), usageSection(u, byType), folders];
  if (ctx.whoami.role === "admin") {
    const [nodes, stats] = await Promise.all([call("GET", "/nodes"), call("GET", "/admin/stats")]);
    parts.push(adminSection(nodes, stats));
  }
  clear(view).append(...parts.filter((p) => p));
}
