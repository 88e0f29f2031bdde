// Buckets, and the folders and objects of one bucket: list (paged), create; each row's
// actions are actions.js's, the bucket's settings access.js's, uploads upload.js's. Every
// action is one API call with the signed-in token.
import { bucketSettingsDialog } from "./access.js";
import { folderActions, objectActions } from "./actions.js";
import { call, query } from "./api.js";
import { button, bytes, clear, h, printable, when } from "./dom.js";
import { uploadPanel } from "./upload.js";

const PAGE_SIZES = [10, 100, 1000];

export async function bucketsView(view, ctx) {
  const { buckets } = await call("GET", "/buckets");
  const name = h("input", { id: "new-bucket", required: true, autocomplete: "off" });
  const form = h("form", { id: "create-bucket" },
    h("label", { for: "new-bucket" }, "New bucket"), name,
    h("button", { type: "submit", class: "primary" }, "Create bucket"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await ctx.act(async () => {
      await call("POST", "/buckets", { name: name.value.trim() });
      ctx.say(`Bucket ${name.value.trim()} created`);
      ctx.rerender();
    });
  });
  const rows = buckets.map((b) => h("tr", {},
    h("td", { class: "name" }, h("a", { href: bucketHref(b.name, "") }, printable(b.name))),
    h("td", {}, printable(b.owner)),
    h("td", { class: "optional" }, b.versioning || ""),
    h("td", { class: "optional" }, b.access || ""),
    h("td", { class: "optional" }, when(b.created_at))));
  clear(view).append(
    h("h2", {}, "Buckets"), form,
    rows.length === 0 ? h("p", {}, "No buckets yet.") : table(
      ["Name", "Owner", ["Versioning", "optional"], ["Access", "optional"], ["Created", "optional"]],
      rows, "Buckets"));
}

export function bucketHref(bucket, prefix, contains) {
  return `#/bucket${query({ name: bucket, prefix, contains })}`;
}

function table(headings, rows, caption) {
  const head = headings.map((x) => {
    const [text, cls] = Array.isArray(x) ? x : [x, null];
    return h("th", { scope: "col", class: cls }, text);
  });
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows)));
}

function crumbs(bucket, prefix) {
  const parts = prefix.split("/").filter((p) => p !== "");
  const links = [h("a", { href: "#/buckets" }, "Buckets"), " / ",
    h("a", { href: bucketHref(bucket, "") }, printable(bucket))];
  let acc = "";
  for (const p of parts) {
    acc += `${p}/`;
    links.push(" / ", h("a", { href: bucketHref(bucket, acc) }, printable(p)));
  }
  return h("nav", { class: "crumbs", "aria-label": "Folder path" }, links);
}

// paging: the tokens of the pages before this one, per (bucket, prefix, page size)
const paging = { where: "", tokens: [] };

// one page of a folder (prefix and "/" as delimiter), or of the namespace's search within it
async function listPage(bucket, prefix, contains, limit, token) {
  const base = `/buckets/${encodeURIComponent(bucket)}`;
  if (contains) return call("GET", `${base}/search${query({ prefix, contains, limit, token })}`);
  return call("GET", `${base}/objects${query({ prefix, delimiter: "/", limit, token })}`);
}

export async function bucketView(view, ctx, params) {
  const bucket = params.get("name") || "";
  const prefix = params.get("prefix") || "";
  const contains = params.get("contains") || "";
  const limit = Number(sessionStorage.getItem("dfs-console-page") || PAGE_SIZES[1]);
  const where = `${bucket}\n${prefix}\n${contains}\n${limit}`;
  if (paging.where !== where) Object.assign(paging, { where, tokens: [null] });
  const token = paging.tokens[paging.tokens.length - 1];
  const listing = await listPage(bucket, prefix, contains, limit, token);
  const rows = [
    ...(listing.common_prefixes || []).map((p) => folderRow(ctx, bucket, prefix, p)),
    ...listing.objects.map((o) => objectRow(ctx, bucket, prefix, o)),
  ];
  const empty = contains ? "No key here contains that text." : "This folder is empty.";
  clear(view).append(
    h("div", { class: "bucket-head" }, h("h2", {}, "Bucket ", printable(bucket)),
      button("Bucket settings", () => ctx.act(() => bucketSettingsDialog(ctx, bucket)))),
    crumbs(bucket, prefix),
    uploadPanel(ctx, bucket, prefix), searchForm(bucket, prefix, contains),
    rows.length === 0 ? h("p", {}, empty) : table(
      ["Name", ["Size", "num"], ["Modified", "optional"], ["Type", "optional"],
        ["Tags", "optional"], "Actions"],
      rows, contains ? "Search results" : "Folders and objects"),
    pager(ctx, listing.next_token, limit));
}

function searchForm(bucket, prefix, contains) {
  const input = h("input", { id: "search", type: "search", value: contains, autocomplete: "off" });
  const form = h("form", { id: "search-form", role: "search" },
    h("label", { for: "search" }, "Keys containing"), input,
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = bucketHref(bucket, prefix, input.value);
  });
  return form;
}

function folderRow(ctx, bucket, prefix, p) {
  const label = `${p.slice(prefix.length)}`;
  return h("tr", { class: "folder" },
    h("td", { class: "name" }, h("a", { href: bucketHref(bucket, p) }, printable(label))),
    h("td", { class: "num" }, ""), h("td", { class: "optional" }, ""),
    h("td", { class: "optional" }, "folder"), h("td", { class: "optional" }, ""),
    h("td", {}, folderActions(ctx, bucket, p)));
}

function objectRow(ctx, bucket, prefix, o) {
  const label = o.key.slice(prefix.length);
  return h("tr", { class: "object" },
    h("td", { class: "name" }, printable(label)),
    h("td", { class: "num" }, bytes(o.size)),
    h("td", { class: "optional" }, when(o.created_at)),
    h("td", { class: "optional" }, o.content_type || ""),
    h("td", { class: "optional tags" }, tagText(o.tags)),
    h("td", {}, objectActions(ctx, bucket, label, o)));
}

function tagText(tags) {
  return Object.entries(tags || {}).map(([k, v]) => `${printable(k)}=${printable(v)}`).join(", ");
}

function pager(ctx, nextToken, limit) {
  const size = h("select", { id: "page-size" },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === limit }, String(n))));
  size.addEventListener("change", () => {
    sessionStorage.setItem("dfs-console-page", size.value);
    ctx.rerender();
  });
  const first = button("First page", () => {
    paging.tokens = [null];
    ctx.rerender();
  }, { disabled: paging.tokens.length <= 1 });
  const next = button("Next page", () => {
    paging.tokens.push(nextToken);
    ctx.rerender();
  }, { disabled: !nextToken, id: "next-page" });
  return h("div", { class: "pager" }, first, next,
    h("span", {}, `page ${paging.tokens.length}`),
    h("label", { for: "page-size" }, "Per page"), size);
}
