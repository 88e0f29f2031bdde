// What a listing's rows offer: download, delete, and a "More" menu per object (versions, share
// link, copy or move, tags, access); a folder's rename, copy and delete (folders.js). Each
// action is an API call with the signed-in token, so the page can do nothing the token cannot.
import { call, keyPath } from "./api.js";
import { accessDialog } from "./access.js";
import { download } from "./download.js";
import { bucketChoice, field, openDialog } from "./dialog.js";
import { button, h, printable } from "./dom.js";
import { deleteFolder, folderCopyDialog } from "./folders.js";
import { shareDialog } from "./share.js";
import { tagsDialog } from "./tags.js";
import { versionsDialog } from "./versions.js";

// a disclosure of more buttons; only one menu is open at a time, and a choice closes it
function menu(label, items) {
  const details = h("details", { class: "menu" },
    h("summary", { "aria-label": label }, "More"), h("div", { class: "menu-items" }, items));
  details.addEventListener("toggle", () => {
    if (!details.open) return;
    for (const other of document.querySelectorAll("details.menu[open]")) {
      if (other !== details) other.open = false;
    }
  });
  details.addEventListener("click", (e) => {
    if (e.target instanceof HTMLButtonElement) details.open = false;
  });
  details.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || !details.open) return;
    details.open = false;
    details.querySelector("summary").focus();
  });
  return details;
}

// a click anywhere else closes an open menu, as menus do
document.addEventListener("click", (e) => {
  for (const open of document.querySelectorAll("details.menu[open]")) {
    if (!open.contains(e.target)) open.open = false;
  }
});

export function objectActions(ctx, bucket, label, o) {
  const name = printable(label);
  const del = button("Delete", () => ctx.act(async () => {
    if (!window.confirm(`Delete ${printable(o.key)}?`)) return;
    await call("DELETE", `/objects/${keyPath(bucket, o.key)}`);
    ctx.say(`Deleted ${printable(o.key)}`);
    ctx.rerender();
  }), { class: "danger", "aria-label": `Delete ${name}` });
  // a dialog that fails to open (its first call refused) says so in the status line
  const item = (text, aria, open) => button(text, () => ctx.act(open), { "aria-label": aria });
  const more = menu(`More actions for ${name}`, [
    item("Versions", `Versions of ${name}`, () => versionsDialog(ctx, bucket, o.key)),
    item("Share link", `Share link to ${name}`, () => shareDialog(ctx, bucket, o.key)),
    item("Copy or move", `Copy or move ${name}`, () => copyDialog(ctx, bucket, o.key)),
    item("Tags", `Tags of ${name}`, () => tagsDialog(ctx, bucket, o)),
    item("Access", `Access to ${name}`, () => accessDialog(ctx, bucket, o)),
  ]);
  const get = button("Download", () => ctx.act(() => download(bucket, o.key)),
    { "aria-label": `Download ${name}` });
  return h("div", { class: "actions" }, get, more, del);
}

export function folderActions(ctx, bucket, prefix) {
  const name = printable(prefix);
  return h("div", { class: "actions" },
    button("Rename or move", () => ctx.act(() => folderCopyDialog(ctx, bucket, prefix, true)),
      { "aria-label": `Rename or move ${name}` }),
    button("Copy", () => ctx.act(() => folderCopyDialog(ctx, bucket, prefix, false)),
      { "aria-label": `Copy ${name}` }),
    button("Delete", () => ctx.act(() => deleteFolder(ctx, bucket, prefix)),
      { class: "danger", "aria-label": `Delete folder ${name}` }));
}

// one key to another key or bucket: metadata only on the server, no byte moves
async function copyDialog(ctx, bucket, key) {
  const dst = await bucketChoice(bucket);
  openDialog(ctx, ["Copy or move ", printable(key)], (d) => {
    const target = h("input", { value: key, required: true, autocomplete: "off", spellcheck: "false" });
    const move = h("input", { type: "checkbox", id: "copy-move" });
    const form = h("form", { class: "dialog-form" },
      field("To bucket", dst), field("As key", target),
      h("div", { class: "check" }, move, h("label", { for: "copy-move" }, "Move (remove the original)")),
      h("button", { type: "submit", class: "primary" }, "Copy"));
    move.addEventListener("change", () => {
      form.querySelector("button[type=submit]").textContent = move.checked ? "Move" : "Copy";
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      d.run(async () => {
        const body = { src_bucket: bucket, src_key: key, dst_bucket: dst.value,
          dst_key: target.value, move: move.checked };
        await call("POST", "/objects-copy", body);
        const verb = move.checked ? "Moved" : "Copied";
        d.close();
        ctx.say(`${verb} ${printable(key)} to ${printable(dst.value)}/${printable(target.value)}`);
        ctx.rerender();
      });
    });
    d.body.append(form);
  });
}
