// The console's hashing worker (a module worker): the SHA-256 of a File, read piece by piece
// with file.slice() and fed to the vendored incremental js-sha256, so memory stays at one
// piece whatever the file's size (a 4 GiB file is never loaded whole; Web Crypto's digest()
// is one-shot and would need it). Messages in: {id, file} to hash, {cancel: id} to stop.
// Messages out: {id, loaded} as it goes, then {id, sha256} or {id, error}.
import { sha256 } from "./vendor/js-sha256/sha256.min.mjs";

const PIECE = 4 * 1024 * 1024;
const PROGRESS_EVERY = 16 * 1024 * 1024;
const cancelled = new Set();

async function hash(id, file) {
  const h = sha256.create();
  let reported = 0;
  for (let off = 0; off < file.size; off += PIECE) {
    if (cancelled.has(id)) throw new Error("cancelled");
    const piece = await file.slice(off, Math.min(file.size, off + PIECE)).arrayBuffer();
    h.update(piece);
    const loaded = Math.min(file.size, off + PIECE);
    if (loaded - reported >= PROGRESS_EVERY || loaded === file.size) {
      reported = loaded;
      self.postMessage({ id, loaded });
    }
  }
  return h.hex();
}

self.addEventListener("message", async (e) => {
  const { id, file, cancel } = e.data;
  if (cancel !== undefined) {
    cancelled.add(cancel);
    return;
  }
  try {
    self.postMessage({ id, sha256: await hash(id, file) });
  } catch (err) {
    self.postMessage({ id, error: String(err.message || err) });
  } finally {
    cancelled.delete(id);
  }
});
