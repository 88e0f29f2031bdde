// The versions of one key (the listing's versions=true, newest first): download any of them,
// restore one (POST /objects-restore: a copy of it becomes the current version, metadata only)
// or remove one for good (DELETE ?version=).
import { call, keyPath, query } from "./api.js";
import { download } from "./download.js";
import { openDialog } from "./dialog.js";
import { button, bytes, h, printable, when } from "./dom.js";

const MAX_SHOWN = 1000; // versions read into the dialog at most

// this key's versions: the prefix listing also holds longer keys (a.txt.bak after a.txt), so
// paging stops at the first key that is not this one
async function versionsOf(bucket, key) {
  const found = [];
  let token = null;
  do {
    const q = query({ prefix: key, versions: "true", limit: 100, token });
    const page = await call("GET", `/buckets/${encodeURIComponent(bucket)}/objects${q}`);
    const mine = page.objects.filter((v) => v.key === key);
    found.push(...mine);
    const past = page.objects.some((v) => v.key > key);
    token = past ? null : page.next_token;
  } while (token && found.length < MAX_SHOWN);
  return { versions: found.slice(0, MAX_SHOWN), more: Boolean(token) || found.length > MAX_SHOWN };
}

function state(v) {
  if (v.is_delete_marker) return "delete marker";
  return v.is_latest ? "current" : "";
}

function versionRow(ctx, d, bucket, key, v, reload) {
  const id = printable(v.version_id);
  const buttons = [];
  if (!v.is_delete_marker) {
    buttons.push(button("Download", () => d.run(() => download(bucket, key, v.version_id)),
      { "aria-label": `Download version ${id}` }));
  }
  if (!v.is_latest && !v.is_delete_marker) {
    buttons.push(button("Restore", () => d.run(async () => {
      await call("POST", "/objects-restore", { bucket, key, version: v.version_id });
      ctx.say(`Restored version ${id} of ${printable(key)}`);
      await reload(`Restored version ${id}: it is the current one again`);
      ctx.rerender();
    }), { class: "primary", "aria-label": `Restore version ${id}` }));
  }
  buttons.push(button("Remove", () => d.run(async () => {
    if (!window.confirm(`Remove version ${id} of ${printable(key)} for good?`)) return;
    await call("DELETE", `/objects/${keyPath(bucket, key)}${query({ version: v.version_id })}`);
    await reload(`Removed version ${id}`);
    ctx.rerender();
  }), { class: "danger", "aria-label": `Remove version ${id}` }));
  return h("tr", { class: v.is_latest ? "version current" : "version" },
    h("td", { class: "name" }, h("code", {}, id)),
    h("td", { class: "optional" }, when(v.created_at)),
    h("td", { class: "num" }, v.is_delete_marker ? "" : bytes(v.size)),
    h("td", {}, state(v)),
    h("td", {}, h("div", { class: "actions" }, buttons)));
}

export async function versionsDialog(ctx, bucket, key) {
  const first = await versionsOf(bucket, key);
  openDialog(ctx, ["Versions of ", printable(key)], (d) => {
    const holder = h("div", { class: "table-wrap" });
    const show = ({ versions, more }) => {
      const head = ["Version", "Modified", "Size", "State", "Actions"].map((t, i) =>
        h("th", { scope: "col", class: [null, "optional", "num", null, null][i] }, t));
      const rows = versions.map((v) => versionRow(ctx, d, bucket, key, v, reload));
      holder.replaceChildren(h("table", { class: "versions" },
        h("caption", { class: "sr-only" }, "Versions, newest first"),
        h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows)));
      if (more) holder.append(h("p", { class: "hint" }, `Only the newest ${MAX_SHOWN} are shown.`));
    };
    async function reload(message) {
      show(await versionsOf(bucket, key));
      d.say(message);
    }
    show(first);
    d.body.append(holder);
  });
}
