// A folder (a prefix) renamed, moved or copied, and deleted. A rename lists every key under
// the folder first, then copies each (a move also removes the original) with one
// POST /objects-copy per key: metadata only on the server, no chunk read or written. So a big
// folder shows how far it got, can be stopped, and a second run moves what is left.
import { call, query } from "./api.js";
import { bucketChoice, field, openDialog } from "./dialog.js";
import { button, h, printable } from "./dom.js";

const PARALLEL = 4; // keys in flight at once: enough to hide the round trips, gentle on the API

// every current key under the prefix, page by page (no delimiter: the whole subtree)
async function keysUnder(bucket, prefix, d) {
  const keys = [];
  let token = null;
  do {
    const q = query({ prefix, limit: 1000, token });
    const page = await call("GET", `/buckets/${encodeURIComponent(bucket)}/objects${q}`);
    keys.push(...page.objects.map((o) => o.key));
    token = page.next_token;
    d.say(`Found ${keys.length} keys…`);
  } while (token);
  return keys;
}

// "summer" or "/summer" -> "summer/"; "" stays "" (the bucket's top level)
function asFolder(path) {
  const p = path.trim().replace(/^\/+/, "");
  return p === "" || p.endsWith("/") ? p : `${p}/`;
}

function checkTarget(bucket, prefix, dstBucket, dst, move) {
  if (dstBucket !== bucket) return;
  if (dst === prefix) throw new Error(move ? "that is the folder's own name" : "copy to another folder");
  if (dst.startsWith(prefix)) throw new Error("a folder cannot go inside itself");
}

// the first listed key that the copy would also write (null: none). In the same bucket a
// destination can be a source still to copy: moving a/b/ to a/ writes a/b/b/x onto a/b/x,
// whose own bytes are gone before it is copied to a/x. Keys go four at a time, in no order.
function overwrittenSource(keys, from, to) {
  if (from.bucket !== to.bucket) return null;
  const sources = new Set(keys);
  for (const key of keys) {
    const dst = to.prefix + key.slice(from.prefix.length);
    if (sources.has(dst)) return dst;
  }
  return null;
}

// copy (or move) each key; progress(done) after each; stops early when stop() says so
async function copyKeys(keys, from, to, move, progress, stop) {
  let next = 0;
  let done = 0;
  let failure = null;
  async function worker() {
    while (failure === null && !stop() && next < keys.length) {
      const key = keys[next++];
      const body = { src_bucket: from.bucket, src_key: key, dst_bucket: to.bucket,
        dst_key: to.prefix + key.slice(from.prefix.length), move };
      try {
        await call("POST", "/objects-copy", body);
        done += 1;
        progress(done);
      } catch (err) {
        failure = failure || err;
      }
    }
  }
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return { done, failure };
}

export async function folderCopyDialog(ctx, bucket, prefix, move) {
  const dst = await bucketChoice(bucket, { id: "folder-bucket" });
  const verb = move ? "Move" : "Copy";
  const title = [move ? "Rename or move " : "Copy ", printable(prefix)];
  openDialog(ctx, title, (d) => {
    const target = h("input", { id: "folder-target", value: prefix, required: true,
      autocomplete: "off", spellcheck: "false" });
    const bar = h("progress", { max: 1, value: 0, "aria-label": "Keys done", hidden: true });
    const submit = h("button", { type: "submit", class: "primary" }, verb);
    let stopping = false;
    const stop = button("Stop", () => { stopping = true; }, { hidden: true });
    const form = h("form", { class: "dialog-form" },
      field("To bucket", dst), field("New folder path", target, "the whole path in the bucket"),
      submit, stop, bar);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      d.run(async () => {
        const to = { bucket: dst.value, prefix: asFolder(target.value) };
        checkTarget(bucket, prefix, to.bucket, to.prefix, move);
        submit.disabled = true;
        stopping = false;
        try {
          const keys = await keysUnder(bucket, prefix, d);
          const hit = overwrittenSource(keys, { bucket, prefix }, to);
          if (hit !== null) {
            throw new Error(`${printable(hit)} would be overwritten before it is ` +
              `${move ? "moved" : "copied"}: choose another folder`);
          }
          Object.assign(bar, { max: Math.max(keys.length, 1), value: 0, hidden: false });
          stop.hidden = false;
          const where = `${printable(to.bucket)}/${printable(to.prefix)}`;
          const said = (n) => `${move ? "Moved" : "Copied"} ${n} of ${keys.length} keys to ${where}`;
          const { done, failure } = await copyKeys(keys, { bucket, prefix }, to, move, (n) => {
            bar.value = n;
            d.say(said(n));
          }, () => stopping);
          if (failure) throw new Error(`${said(done)}; then: ${failure.message}`);
          d.say(stopping ? `Stopped: ${said(done)}` : said(done));
          ctx.say(said(done));
        } finally {
          submit.disabled = false;
          stop.hidden = true;
          ctx.rerender();
        }
      });
    });
    d.body.append(form);
  });
}

export async function deleteFolder(ctx, bucket, prefix) {
  if (!window.confirm(`Delete every key under ${printable(prefix)}?`)) return;
  const q = query({ prefix });
  const { deleted } = await call("DELETE", `/buckets/${encodeURIComponent(bucket)}/objects${q}`);
  ctx.say(`Deleted ${deleted} keys under ${printable(prefix)}`);
  ctx.rerender();
}
