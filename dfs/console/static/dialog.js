// Modal dialogs of the console's actions: the native <dialog> (the browser keeps focus inside,
// Escape closes it, focus goes back to the button that opened it), named by its heading, with
// its own message line, so an error is never shown behind the modal where no one can read it.
import { ApiError, call } from "./api.js";
import { button, h, printable } from "./dom.js";

let opened = 0;

// openDialog(ctx, ["Versions of ", key], (d) => { d.body.append(...) }): d.body, d.say(text,
// isError), d.run(fn) (errors shown in the dialog; a refused token signs out), d.close()
export function openDialog(ctx, title, build) {
  opened += 1;
  const titleId = `dialog-title-${opened}`;
  const message = h("p", { class: "dialog-message", role: "status" });
  const body = h("div", { class: "dialog-body" });
  const el = h("dialog", { class: "modal", "aria-labelledby": titleId },
    h("h2", { id: titleId }, title), body, message);
  const d = {
    el,
    body,
    say(text, isError) {
      message.textContent = text;
      message.className = isError ? "dialog-message error" : "dialog-message";
    },
    async run(fn) {
      try {
        d.say("");
        await fn();
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          el.close();
          await ctx.act(() => Promise.reject(err)); // signs out
        } else {
          d.say(`Error: ${err.message}`, true);
        }
      }
    },
    close() {
      el.close();
    },
  };
  el.append(h("div", { class: "dialog-buttons" }, button("Close", () => el.close())));
  el.addEventListener("close", () => el.remove());
  document.body.append(el);
  build(d);
  el.showModal();
  return d;
}

// a labelled form field: label text, the control, and an optional hint under it
export function field(label, control, hint) {
  const id = control.id || `field-${++opened}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("span", { class: "hint" }, hint) : null);
}

// a <select> of [value, text] pairs with `selected` chosen
export function choice(options, selected, attrs) {
  return h("select", attrs || {}, options.map(([value, text]) =>
    h("option", { value, selected: value === selected }, text)));
}

// a <select> of the buckets a destination may be in (own and granted; the API decides whether
// the token may write there), `current` chosen
export async function bucketChoice(current, attrs) {
  const { buckets } = await call("GET", "/buckets");
  const names = buckets.map((b) => b.name);
  if (!names.includes(current)) names.unshift(current);
  return choice(names.map((n) => [n, printable(n)]), current, attrs);
}

// said after a dialog changed the version its row showed (the API answers with that version)
// when another was written since: the newer one is left as it was, and the page shows it
export function olderNote(saved) {
  return saved && saved.is_latest === false
    ? " (the version shown; a newer one, written since, is unchanged)" : "";
}
