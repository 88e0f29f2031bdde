// Calls to the API of this origin with the signed-in token; the token lives in sessionStorage.
const TOKEN_KEY = "dfs-console-token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// only paths of this origin: the token must never travel anywhere else. The URL parser
// decides, not a prefix test: it reads "/\host/x" as "//host/x", another origin.
export function sameOrigin(path) {
  const local = String(path).startsWith("/") && new URL(path, location.origin).origin === location.origin;
  if (!local || path.startsWith("//")) throw new Error(`not a local path: ${path}`);
  return path;
}

async function failure(resp) {
  let code = "http_error";
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(resp.status, code, message);
}

export async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(sameOrigin(path), init);
  if (!resp.ok) throw await failure(resp);
  return resp.status === 204 ? null : resp.json();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

const DOTS = new Set([".", ".."]);

// a key in a URL path: each segment encoded, the slashes kept, except beside a "." or ".."
// segment: the browser's URL parser drops those (even written %2E%2E), so "x/../../b2/k"
// would act on key k of bucket b2; sent as %2F, that slash leaves no dot segment (the API
// decodes it back). A key that is only "." or ".." cannot be named in a path at all (the
// request then reaches no object route and fails, it never acts on another key).
export function keyPath(bucket, key) {
  const parts = key.split("/").map(encodeURIComponent);
  let path = parts[0];
  for (let i = 1; i < parts.length; i += 1) {
    path += (DOTS.has(parts[i]) || DOTS.has(parts[i - 1]) ? "%2F" : "/") + parts[i];
  }
  return `${encodeURIComponent(bucket)}/${path}`;
}

// POST /upload?bucket=&key= with the file as the raw body; progress(fraction) as it goes;
// an abort of ``signal`` cancels the request (rejected with code "aborted")
export function uploadFile(bucket, key, file, progress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const path = `/upload${query({ bucket, key, filename: file.name })}`;
    xhr.open("POST", sameOrigin(path));
    xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && e.total > 0) progress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else {
        const err = (body && body.error) || {};
        reject(new ApiError(xhr.status, err.code || "http_error", err.message || `${xhr.status}`));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "network error")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "cancelled")));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}
