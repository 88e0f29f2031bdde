// A signed link to one object (GET /object-url?ttl=): anyone holding it may download that
// version, without a token, until it expires (at most the cluster's capability lifetime,
// 10 minutes unless its operator set DFS_CAPABILITY_TTL, 15 at most). It is copied to the
// clipboard; the link answers as an attachment with nosniff and a sandbox policy.
import { call, keyPath, query } from "./api.js";
import { choice, field, openDialog } from "./dialog.js";
import { button, h, printable, when } from "./dom.js";

const EXPIRIES = [["60", "1 minute"], ["300", "5 minutes"], ["600", "10 minutes"], ["900", "15 minutes"]];

async function copy(text, d) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    d.say("The browser did not let the page use the clipboard: copy the link above.", true);
    return false;
  }
}

export function shareDialog(ctx, bucket, key) {
  openDialog(ctx, ["Share ", printable(key)], (d) => {
    const ttl = choice(EXPIRIES, "600", { id: "share-expiry" });
    const link = h("input", { id: "share-link", type: "url", readonly: true, value: "",
      spellcheck: "false" });
    link.addEventListener("focus", () => link.select());
    const again = button("Copy again", () => d.run(async () => {
      if (await copy(link.value, d)) d.say("Link copied to the clipboard");
    }), { hidden: true });
    const out = h("div", { class: "share-out", hidden: true },
      field("Link", link, "Anyone with the link can download this version until it expires."),
      again);
    const form = h("form", { class: "dialog-form" },
      field("Expires in", ttl), h("button", { type: "submit", class: "primary" }, "Create link"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      d.run(async () => {
        const signed = await call("GET", `/object-url/${keyPath(bucket, key)}${query({ ttl: ttl.value })}`);
        if (!/^https?:\/\//.test(signed.download_url)) throw new Error("the API gave no http(s) link");
        link.value = signed.download_url;
        out.hidden = false;
        again.hidden = false;
        const until = `expires ${when(signed.expires_at)}`;
        if (await copy(signed.download_url, d)) d.say(`Link copied to the clipboard; it ${until}`);
      });
    });
    d.body.append(form, out);
  });
}
