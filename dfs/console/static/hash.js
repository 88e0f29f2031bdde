// The page's side of the hashing worker (hash-worker.js): one worker for the page, each file
// a job with an id; hashFile() resolves to the hex SHA-256, or null where workers are not
// available (the upload then goes ahead unhashed, and the API's dedup still applies).
let worker = null;
let nextId = 0;
const jobs = new Map();

function theWorker() {
  if (worker === null && typeof Worker !== "undefined") {
    worker = new Worker(new URL("./hash-worker.js", import.meta.url), { type: "module" });
    worker.addEventListener("message", (e) => {
      const job = jobs.get(e.data.id);
      if (!job) return;
      if (e.data.loaded !== undefined) job.progress(e.data.loaded);
      else {
        jobs.delete(e.data.id);
        if (e.data.error !== undefined) job.reject(new Error(e.data.error));
        else job.resolve(e.data.sha256);
      }
    });
  }
  return worker;
}

// hashFile(file, progress(bytesHashed), signal): the file's SHA-256 in hex, or null
export function hashFile(file, progress, signal) {
  const w = theWorker();
  if (w === null) return Promise.resolve(null);
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    jobs.set(id, { resolve, reject, progress });
    if (signal) {
      signal.addEventListener("abort", () => {
        if (!jobs.has(id)) return; // finished already: nothing to stop
        w.postMessage({ cancel: id });
        jobs.delete(id);
        reject(new DOMException("cancelled", "AbortError"));
      }, { once: true });
    }
    w.postMessage({ id, file });
  });
}
