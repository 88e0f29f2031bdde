// The admin's part of the dashboard: the nodes (/nodes: liveness, capacity, heartbeat age)
// and cluster totals (/admin/stats) with their history (/admin/usage), under-replicated
// chunks and repair progress (/admin/repair), and every tenant's usage (/admin/usage).
import { call, query } from "./api.js";
import { figure, lineFigure, usageSeries } from "./chart.js";
import { bytes, card, h, printable, when } from "./dom.js";

const heartbeatAge = (n, now) =>
  n.last_heartbeat ? Math.max(0, Math.round(now - Number(n.last_heartbeat))) : null;

function nodeRow(n, now) {
  const age = heartbeatAge(n, now);
  return h("tr", {},
    h("td", { class: "name" }, printable(n.node_id)),
    h("td", { class: n.live ? "live" : "down" }, n.live ? "live" : "down"),
    h("td", { class: "num" }, `${bytes(n.used_bytes)} / ${bytes(n.capacity_bytes)}`),
    h("td", { class: "num" }, age === null ? "" : `${age} s`),
    h("td", { class: "optional" }, printable(n.zone || "")),
    h("td", { class: "optional" }, printable(n.status || "")));
}

// each node's used share of its capacity, with liveness and heartbeat age in the bar's text
function capacityChart(nodes, now) {
  const bars = nodes.map((n) => {
    const used = n.capacity_bytes ? (100 * n.used_bytes) / n.capacity_bytes : 0;
    const age = heartbeatAge(n, now);
    return {
      label: n.node_id, value: used, cls: n.live ? "stored" : "saved",
      text: `${used.toFixed(1)}% of ${bytes(n.capacity_bytes)}, ${n.live ? "live" : "down"}` +
        (age === null ? "" : `, ${age} s`),
    };
  });
  return figure("Used capacity per node (liveness, heartbeat age)", bars, 100, "node-capacity");
}

function nodesSection(nodes, stats, cluster, now) {
  const head = ["Node", "Liveness", "Used / capacity", "Heartbeat age", "Zone", "Status"];
  const live = { logical_bytes: stats.logical_bytes, stored_bytes: stats.stored_bytes,
    saved_bytes: stats.logical_bytes - stats.stored_bytes };
  return h("section", { "aria-labelledby": "nodes-title", id: "nodes" },
    h("h3", { id: "nodes-title" }, "Cluster"),
    h("div", { class: "cards" },
      card("Live nodes", `${nodes.live} (replication ${nodes.replication_factor})`, "live-nodes"),
      card("All tenants: logical", bytes(stats.logical_bytes)),
      card("All tenants: stored", bytes(stats.stored_bytes)),
      card("Dedup ratio", Number(stats.dedup_ratio || 0).toFixed(2))),
    capacityChart(nodes.nodes, now),
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "sr-only" }, "Nodes"),
      h("thead", {}, h("tr", {}, head.map((t, i) =>
        h("th", { scope: "col", class: i >= 4 ? "optional" : (i >= 2 ? "num" : null) }, t)))),
      h("tbody", {}, nodes.nodes.map((n) => nodeRow(n, now))))),
    lineFigure("All tenants: logical, stored and saved bytes over time",
      usageSeries(cluster, now, live), undefined, "cluster-history"),
    h("p", { class: "hint" }, `Updated ${when(now)}`));
}

// the repair passes' counts as this page saw them since it opened (a pass reports only itself)
const repairSeen = [];
const REPAIR_POINTS = 720;

function repairSection(status, now) {
  const r = status.repair;
  const parts = [h("h3", { id: "repair-title" }, "Repair")];
  if (!r) {
    parts.push(h("p", {}, "No repair pass has run yet."));
    return h("section", { "aria-labelledby": "repair-title", id: "repair", class: "repair" }, parts);
  }
  repairSeen.push([now, r.under_replicated, r.repaired]);
  if (repairSeen.length > REPAIR_POINTS) repairSeen.shift();
  const pass = r.running ? `running since ${when(r.started_at)}` : `finished ${when(r.finished_at)}`;
  parts.push(
    h("div", { class: "cards" },
      card("Under-replicated chunks", String(r.under_replicated), "repair-under"),
      card("Under-replicated bytes", bytes(r.under_replicated_bytes)),
      card("Repaired", `${r.repaired} (${bytes(r.repaired_bytes)})`, "repair-done"),
      card("No live copy", String(r.no_live_copy), "repair-lost"),
      card("Failed copies", String(r.failed))),
    h("label", { for: "repair-progress" }, `Repair progress of the ${r.running ? "running" : "last"} pass`),
    h("progress", { id: "repair-progress", max: Math.max(1, r.under_replicated),
      value: r.under_replicated ? r.repaired : 1 }),
    h("p", { class: "hint", id: "repair-pass" }, `Pass ${pass} (${r.scope}, ` +
      `${r.chunks_scanned} chunks checked); nodes down: ${r.down_nodes.map(printable).join(", ") || "none"}.`),
    lineFigure("Under-replicated and repaired chunks since this page opened", [
      { label: "under-replicated", cls: "saved", points: repairSeen.map(([t, u]) => [t, u]) },
      { label: "repaired", cls: "stored", points: repairSeen.map(([t, , d]) => [t, d]) },
    ], String, "repair-history"));
  return h("section", { "aria-labelledby": "repair-title", id: "repair", class: "repair" }, parts);
}

const TOP_TENANTS = 12;

function tenantsSection(usage) {
  const rows = Object.entries(usage.tenants)
    .sort((a, b) => b[1].logical_bytes - a[1].logical_bytes).slice(0, TOP_TENANTS);
  const bars = rows.flatMap(([t, u]) => [
    { label: t, value: u.logical_bytes, cls: "logical", text: `${bytes(u.logical_bytes)} logical` },
    { label: "", value: u.stored_bytes, cls: "stored", text: `${bytes(u.stored_bytes)} stored` },
  ]);
  const more = Object.keys(usage.tenants).length - rows.length;
  return h("section", { "aria-labelledby": "tenants-title", id: "tenants" },
    h("h3", { id: "tenants-title" }, "Tenants"),
    bars.length ? figure("Logical and stored bytes per tenant", bars) : h("p", {}, "No tenants yet."),
    more > 0 ? h("p", { class: "hint" }, `and ${more} smaller tenants`) : null);
}

export async function adminSections(since) {
  const [nodes, stats, repair, usage] = await Promise.all([
    call("GET", "/nodes"), call("GET", "/admin/stats"), call("GET", "/admin/repair"),
    call("GET", `/admin/usage${query({ since })}`),
  ]);
  const now = Date.now() / 1000;
  return [nodesSection(nodes, stats, usage.cluster, now), repairSection(repair, now),
    tenantsSection(usage)];
}
