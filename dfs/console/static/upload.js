// Uploads into the folder shown: the file picker, the folder picker and drag and drop (files
// and whole folders), a queue sending CONCURRENCY files at once with a progress bar per file
// and one for all, cancel (per file and all) and retry of a failed or cancelled file.
//
// Each file is hashed in the hashing worker (hash.js: streaming, any size) and the page asks
// /check whether this tenant already stores those bytes (its own verified files or objects
// only): if so it asks for the new key by content (PUT /objects with the sha256): the key
// gets a file record of its own with their chunks, no byte sent, "already stored"; the file
// found is never handed to the object (deleting the object must not delete a file someone
// else keeps). Otherwise (or if those bytes went meanwhile: 404 content_not_stored)
// POST /upload sends it; the API chunks it and answers how many
// of its bytes were new to this tenant (new_bytes): "stored" (all new), "N% new" or
// "already stored" (none), never relative to what other tenants store.
import { ApiError, call, keyPath, query, uploadFile } from "./api.js";
import { button, clear, h, printable } from "./dom.js";
import { hashFile } from "./hash.js";

const CONCURRENCY = 2;
const HASH_SHARE = 0.1; // of a file's progress bar: hashing, then sending
// a 503 "busy" (the API's upload slots for the tenant held and queued for) stored nothing:
// the file is sent again after a pause, doubling up to 4 s, for up to BUSY_SECONDS in all
// (as dfs-client does), before it shows as failed
const BUSY_SECONDS = 30;

// resolves after ``ms``; rejects (code "aborted") as soon as ``signal`` aborts
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new ApiError(0, "aborted", "cancelled"));
    }, { once: true });
  });
}

// "stored", "N% new" or "already stored" from the upload's answer (new_bytes of size)
export function newShare(body, size) {
  const n = Number(body && body.new_bytes);
  if (!Number.isFinite(n) || size === 0 || n >= size) return "stored";
  if (n <= 0) return "already stored";
  return `${Math.min(99, Math.max(1, Math.round((100 * n) / size)))}% new`;
}

const pct = (f) => `${Math.floor(100 * f)}%`;

class Item {
  constructor(queue, file, key) {
    Object.assign(this, { queue, file, key, state: "waiting", progress: 0, controller: null });
    const label = printable(key);
    this.bar = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${label}` });
    this.text = h("span", { class: "upload-state" }, "waiting");
    this.cancelButton = button("Cancel", () => this.cancel(), { "aria-label": `Cancel ${label}` });
    this.retryButton = button("Retry", () => this.retry(), {
      "aria-label": `Retry ${label}`, hidden: true,
    });
    this.row = h("li", {}, h("span", { class: "name" }, label), this.bar, this.text,
      this.cancelButton, this.retryButton);
  }

  get finished() {
    return !["waiting", "running"].includes(this.state);
  }

  show(text, progress) {
    this.text.textContent = text;
    if (progress !== undefined) {
      this.progress = progress;
      this.bar.value = progress;
      this.queue.showTotal();
    }
  }

  end(state, text, cls) {
    this.state = state;
    this.text.className = cls ? `upload-state ${cls}` : "upload-state";
    this.show(text, state === "done" ? 1 : this.progress);
    this.cancelButton.hidden = true;
    this.retryButton.hidden = state === "done";
  }

  async run(bucket) {
    this.state = "running";
    this.controller = new AbortController();
    const { signal } = this.controller;
    const size = this.file.size || 1;
    try {
      this.show("hashing", 0);
      const sha256 = await hashFile(this.file,
        (n) => this.show(`hashing ${pct(n / size)}`, HASH_SHARE * (n / size)), signal);
      if (sha256 && await this.linkKnown(bucket, sha256)) {
        this.end("done", "already stored");
        return;
      }
      const body = await this.send(bucket, signal);
      this.end("done", newShare(body, this.file.size));
    } catch (err) {
      if (signal.aborted) this.end("cancelled", "cancelled", "muted");
      else this.end("failed", `failed: ${err.message}`, "error");
    }
  }

  // POST /upload, sent again while the API answers "busy" (BUSY_SECONDS)
  async send(bucket, signal) {
    let wait = 0.5;
    for (let waited = 0; ; waited += wait, wait = Math.min(2 * wait, 4)) {
      this.show("sending", HASH_SHARE);
      try {
        return await uploadFile(bucket, this.key, this.file,
          (f) => this.show(`sending ${pct(f)}`, HASH_SHARE + (1 - HASH_SHARE) * f), signal);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === "busy") || waited >= BUSY_SECONDS) throw err;
      }
      this.show(`busy: sending again in ${wait} s`, HASH_SHARE);
      await pause(wait * 1000, signal);
    }
  }

  // known content: a new object of the tenant's stored bytes, not one byte sent; false
  // when the tenant stores none (then the file is uploaded). /check first: a 404 for every
  // new file would be a failed request in the browser's console
  async linkKnown(bucket, sha256) {
    this.show("checking");
    const found = await call("GET", `/check${query({ sha256 })}`);
    if (!found.exists) return false;
    try {
      await call("PUT", `/objects/${keyPath(bucket, this.key)}`, { sha256 });
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.code === "content_not_stored") return false;
      throw err;
    }
  }

  cancel() {
    if (this.finished) return;
    if (this.state === "waiting") this.end("cancelled", "cancelled", "muted");
    else if (this.controller) this.controller.abort();
  }

  retry() {
    Object.assign(this, { state: "waiting", progress: 0 });
    this.bar.value = 0;
    this.text.className = "upload-state";
    this.show("waiting");
    this.cancelButton.hidden = false;
    this.retryButton.hidden = true;
    this.queue.pump();
  }
}

class Queue {
  constructor(ctx, bucket) {
    Object.assign(this, { ctx, bucket, items: [], running: 0, zone: null });
    this.total = h("progress", { id: "upload-total", max: 1, value: 0, "aria-label": "All uploads" });
    this.cancelAll = button("Cancel all", () => this.items.forEach((i) => i.cancel()), {
      id: "cancel-all",
    });
    this.totalDiv = h("div", { class: "upload-total", hidden: true }, "All files ", this.total,
      this.cancelAll);
    this.list = h("ul", { class: "uploads", "aria-label": "Uploads" });
  }

  add(entries) {
    if (this.running === 0) {
      this.items = [];
      clear(this.list);
    }
    for (const { file, key } of entries) {
      const item = new Item(this, file, key);
      this.items.push(item);
      this.list.append(item.row);
    }
    this.totalDiv.hidden = false;
    this.pump();
  }

  showTotal() {
    const size = this.items.reduce((n, i) => n + (i.file.size || 1), 0) || 1;
    const done = this.items.reduce((n, i) => n + (i.file.size || 1) * (i.finished ? 1 : i.progress), 0);
    this.total.value = done / size;
    this.cancelAll.disabled = this.items.every((i) => i.finished);
  }

  pump() {
    this.showTotal();
    while (this.running < CONCURRENCY) {
      const next = this.items.find((i) => i.state === "waiting");
      if (!next) break;
      this.running += 1;
      next.run(this.bucket).finally(() => {
        this.running -= 1;
        this.pump();
        if (this.running === 0) this.settled();
      });
    }
  }

  settled() {
    const count = (s) => this.items.filter((i) => i.state === s).length;
    const failed = count("failed");
    this.ctx.say(`Uploaded ${count("done")} of ${this.items.length} files` +
      (failed ? `; ${failed} failed` : ""), failed > 0);
    this.ctx.rerender(); // the listing shows the new keys (this panel is kept)
  }
}

// the queue outlives the listing's re-renders (same bucket and folder only)
const kept = { where: "", queue: null };

function queueFor(ctx, bucket, prefix) {
  const where = `${bucket}\n${prefix}`;
  if (kept.where !== where || !kept.queue) Object.assign(kept, { where, queue: new Queue(ctx, bucket) });
  return kept.queue;
}

// a directory entry's files, recursively, with their paths under the dropped folder
async function walk(dir, out) {
  const reader = dir.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return;
    for (const e of batch) {
      if (e.isDirectory) await walk(e, out);
      else out.push({ file: await new Promise((ok, no) => e.file(ok, no)), path: e.fullPath.slice(1) });
    }
  }
}

// what a drop holds: files, and folders walked (items are read before the first await:
// a DataTransfer is only readable during its event)
export async function dropped(dt) {
  const items = [...(dt.items || [])].filter((i) => i.kind === "file")
    .map((i) => ({ entry: i.webkitGetAsEntry ? i.webkitGetAsEntry() : null, file: i.getAsFile() }));
  if (items.length === 0) return [...(dt.files || [])].map((file) => ({ file, path: file.name }));
  const out = [];
  for (const { entry, file } of items) {
    if (entry && entry.isDirectory) await walk(entry, out);
    else if (file) out.push({ file, path: file.name });
  }
  return out;
}

function dropZone(zone, onFiles) {
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const found = dropped(e.dataTransfer);
    found.then(onFiles, (err) => onFiles([], err));
  });
}

// the upload form and queue of a folder: what browse.js puts on a bucket's page. Both are
// kept across the page's re-renders (as long as it shows the same folder): an upload that
// settles re-renders the listing, and a form built anew would drop the files someone had
// just chosen but not yet sent
export function uploadPanel(ctx, bucket, prefix) {
  const queue = queueFor(ctx, bucket, prefix);
  queue.zone = queue.zone || uploadZone(ctx, queue, prefix);
  return h("div", {}, queue.zone, queue.totalDiv, queue.list);
}

function uploadZone(ctx, queue, prefix) {
  const files = h("input", { id: "upload-files", type: "file", multiple: true });
  const folder = h("input", { id: "upload-folder", type: "file", webkitdirectory: true });
  const form = h("form", { id: "upload" },
    h("label", { for: "upload-files" }, `Files into ${printable(prefix) || "/"}`), files,
    h("label", { for: "upload-folder" }, "or a folder"), folder,
    h("button", { type: "submit", class: "primary" }, "Upload"));
  const enqueue = (chosen) => {
    if (chosen.length) queue.add(chosen.map(({ file, path }) => ({ file, key: prefix + path })));
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    // a folder's files keep their path under it: webkitRelativePath is "folder/sub/name"
    enqueue([...files.files, ...folder.files].map((f) => ({ file: f, path: f.webkitRelativePath || f.name })));
    form.reset();
  });
  const zone = h("div", { id: "drop-zone", class: "dropzone" }, form,
    h("p", { class: "hint" }, "or drop files and folders here"));
  dropZone(zone, (chosen, err) => {
    if (err) ctx.say(`Error: ${err.message}`, true);
    enqueue(chosen);
  });
  return zone;
}

// a drop outside the zone must not make the browser open the file in place of the console
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
