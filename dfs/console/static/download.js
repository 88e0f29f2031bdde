// Saving an object's bytes (or one version's): the API signs a URL of its own origin that
// answers as an attachment with nosniff and a sandbox policy, so nothing is rendered here.
import { call, keyPath, query } from "./api.js";
import { h } from "./dom.js";

export async function download(bucket, key, version) {
  const path = `/object-url/${keyPath(bucket, key)}${query({ version })}`;
  const { download_url: url } = await call("GET", path);
  if (!/^https?:\/\//.test(url)) throw new Error("the API gave no http(s) download URL");
  const a = h("a", { href: url, download: key.split("/").pop() || "download" });
  document.body.append(a);
  a.click();
  a.remove();
}
