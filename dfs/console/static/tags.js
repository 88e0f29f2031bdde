// An object's tags edited as name = value rows and saved as the whole set
// (PATCH /object-info {version, tags}: in place, no new version; at most 10 tags, the API's
// rule), on the version the row showed, not one written since the dialog opened.
import { call, keyPath } from "./api.js";
import { olderNote, openDialog } from "./dialog.js";
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

// a name is sent as typed (" env" is not "env") and may be any text, "__proto__" too: pairs
// made into an object by fromEntries, never by assignment, which would set the prototype
function collect(rows) {
  const pairs = [];
  for (const row of rows.querySelectorAll("li")) {
    const name = row.querySelector(".tag-name").value;
    if (name.trim() === "") continue; // an empty row is no tag
    if (pairs.some(([n]) => n === name)) throw new Error(`tag ${printable(name)} is there twice`);
    pairs.push([name, row.querySelector(".tag-value").value]);
  }
  if (pairs.length > MAX_TAGS) throw new Error(`at most ${MAX_TAGS} tags`);
  return Object.fromEntries(pairs);
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
        const saved = await call("PATCH", `/object-info/${keyPath(bucket, o.key)}`,
          { version: o.version_id, tags });
        d.close();
        ctx.say(`Saved ${Object.keys(tags).length} tags on ${printable(o.key)}${olderNote(saved)}`);
        ctx.rerender();
      });
    });
    d.body.append(form);
  });
}
