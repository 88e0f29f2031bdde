// An object's tags edited as name = value rows and saved as the whole set
// (PATCH /object-info {tags}: in place, no new version; at most 10 tags, the API's rule).
import { call, keyPath } from "./api.js";
import { openDialog } from "./dialog.js";
import { button, h, printable } from "./dom.js";

const MAX_TAGS = 10;

function tagRow(rows, n, name, value) {
  const k = h("input", { value: name, autocomplete: "off", spellcheck: "false",
    "aria-label": `Tag ${n} name`, class: "tag-name" });
  const v = h("input", { value, autocomplete: "off", spellcheck: "false",
    "aria-label": `Tag ${n} value`, class: "tag-value" });
  const row = h("li", { class: "tag-row" }, k, " = ", v);
  row.append(button("Remove", () => row.remove(), { "aria-label": `Remove tag ${n}` }));
  rows.append(row);
  return k;
}

function collect(rows) {
  const tags = {};
  for (const row of rows.querySelectorAll("li")) {
    const name = row.querySelector(".tag-name").value.trim();
    if (name === "") continue; // an empty row is no tag
    if (Object.hasOwn(tags, name)) throw new Error(`tag ${printable(name)} is there twice`);
    tags[name] = row.querySelector(".tag-value").value;
  }
  if (Object.keys(tags).length > MAX_TAGS) throw new Error(`at most ${MAX_TAGS} tags`);
  return tags;
}

export function tagsDialog(ctx, bucket, o) {
  openDialog(ctx, ["Tags of ", printable(o.key)], (d) => {
    const rows = h("ul", { class: "tag-rows", "aria-label": "Tags" });
    let n = 0;
    for (const [name, value] of Object.entries(o.tags || {})) tagRow(rows, ++n, name, value);
    const add = button("Add tag", () => tagRow(rows, ++n, "", "").focus());
    const form = h("form", { class: "dialog-form" }, rows, add,
      h("button", { type: "submit", class: "primary" }, "Save tags"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      d.run(async () => {
        const tags = collect(rows);
        await call("PATCH", `/object-info/${keyPath(bucket, o.key)}`, { tags });
        d.close();
        ctx.say(`Saved ${Object.keys(tags).length} tags on ${printable(o.key)}`);
        ctx.rerender();
      });
    });
    d.body.append(form);
  });
}
