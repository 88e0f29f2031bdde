// Who may read what, as the namespace's access model has it (dfs.api.access): an object is
// private (readable by whoever may list its bucket), public-read (anyone, no token) or shared
// with named tenants (PATCH /object-info, bucket owner only); a bucket has a versioning state,
// private or public-read access, and grants of read or read-write to other tenants
// (PATCH /buckets/{bucket}, owner only). The API refuses what the token may not do.
import { call, keyPath } from "./api.js";
import { choice, field, olderNote, openDialog } from "./dialog.js";
import { button, h, printable } from "./dom.js";

const OBJECT_ACCESS = [
  ["private", "Private: whoever may read this bucket"],
  ["public-read", "Public: anyone with its address, without a token"],
  ["shared", "Shared with these tenants, too:"],
];

// "bob, carol dave" -> ["bob", "carol", "dave"]
function tenants(text) {
  return text.split(/[\s,]+/).filter((t) => t !== "");
}

function radio(name, value, text, checked) {
  const id = `${name}-${value}`;
  return h("div", { class: "check" },
    h("input", { type: "radio", name, id, value, checked }), h("label", { for: id }, text));
}

export function accessDialog(ctx, bucket, o) {
  openDialog(ctx, ["Access to ", printable(o.key)], (d) => {
    const current = o.access || "private";
    const shared = h("input", { id: "access-tenants", autocomplete: "off", spellcheck: "false",
      value: (o.shared_with || []).join(", "), "aria-label": "Tenants to share with" });
    const choices = OBJECT_ACCESS.map(([v, text]) => radio("access", v, text, v === current));
    const form = h("form", { class: "dialog-form" },
      h("fieldset", {}, h("legend", {}, "Who may read it"), choices, shared),
      h("p", { class: "hint" }, "Only the bucket's owner may change this."),
      h("button", { type: "submit", class: "primary" }, "Save access"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      d.run(async () => {
        const access = form.querySelector("input[name=access]:checked").value;
        const names = access === "shared" ? tenants(shared.value) : [];
        if (access === "shared" && names.length === 0) throw new Error("name a tenant to share with");
        // the version the row showed: one a read-write grantee wrote since is not made public
        const saved = await call("PATCH", `/object-info/${keyPath(bucket, o.key)}`,
          { version: o.version_id, access, shared_with: names });
        d.close();
        const whom = names.length ? ` with ${names.map(printable).join(", ")}` : "";
        ctx.say(`${printable(o.key)} is now ${access}${whom}${olderNote(saved)}`);
        ctx.rerender();
      });
    });
    d.body.append(form);
  });
}

function grantRow(list, n, tenant, grant) {
  const who = h("input", { value: tenant, class: "grant-tenant", autocomplete: "off",
    spellcheck: "false", "aria-label": `Grant ${n} tenant` });
  const what = choice([["read", "read"], ["read-write", "read and write"]], grant,
    { class: "grant-level", "aria-label": `Grant ${n} access` });
  const row = h("li", { class: "grant-row" }, who, what);
  row.append(button("Remove", () => row.remove(), { "aria-label": `Remove grant ${n}` }));
  list.append(row);
  return who;
}

function settingsForm(d, b, mine) {
  const versions = [["enabled", "enabled"], ["suspended", "suspended"]];
  if (b.versioning === "unversioned") versions.unshift(["unversioned", "off (never versioned)"]);
  const versioning = choice(versions, b.versioning, { id: "bucket-versioning" });
  const access = choice([["private", "private"], ["public-read", "public: anyone may list and read"]],
    b.access, { id: "bucket-access" });
  const grants = h("ul", { class: "grant-rows", "aria-label": "Grants" });
  let n = 0;
  for (const [t, g] of Object.entries(b.grants || {})) grantRow(grants, ++n, t, g);
  const add = button("Add grant", () => grantRow(grants, ++n, "", "read").focus());
  const form = h("form", { class: "dialog-form" },
    field("Versioning", versioning, "once enabled, it can be suspended but not turned off"),
    field("Access", access),
    h("fieldset", {}, h("legend", {}, "Other tenants"), grants, add),
    h("button", { type: "submit", class: "primary" }, "Save settings"));
  if (!mine) {
    for (const c of form.querySelectorAll("input, select, button")) c.disabled = true;
    d.say(`Only the owner, ${printable(b.owner)}, may change these settings.`);
  }
  const read = () => {
    const body = { access: access.value, grants: {} };
    if (versioning.value !== b.versioning) body.versioning = versioning.value;
    for (const row of grants.querySelectorAll("li")) {
      const t = row.querySelector(".grant-tenant").value.trim();
      if (t !== "") body.grants[t] = row.querySelector(".grant-level").value;
    }
    return body;
  };
  return { form, read };
}

export async function bucketSettingsDialog(ctx, bucket) {
  const b = await call("GET", `/buckets/${encodeURIComponent(bucket)}`);
  const mine = ctx.whoami && ctx.whoami.tenant === b.owner;
  openDialog(ctx, ["Settings of bucket ", printable(bucket)], (d) => {
    const { form, read } = settingsForm(d, b, mine);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      d.run(async () => {
        const saved = await call("PATCH", `/buckets/${encodeURIComponent(bucket)}`, read());
        d.close();
        ctx.say(`Bucket ${printable(bucket)}: versioning ${saved.versioning}, ${saved.access}`);
        ctx.rerender();
      });
    });
    const remove = button("Delete bucket", () => d.run(async () => {
      if (!window.confirm(`Delete the bucket ${printable(bucket)}? It must be empty.`)) return;
      await call("DELETE", `/buckets/${encodeURIComponent(bucket)}`);
      d.close();
      ctx.say(`Bucket ${printable(bucket)} deleted`);
      location.hash = "#/buckets";
    }), { class: "danger", disabled: !mine });
    d.body.append(form, h("div", { class: "dialog-danger" }, remove));
  });
}
