// The console's entry: sign-in, the hash router (#/buckets, #/bucket?name=&prefix=,
// #/dashboard) and the context views act through. No token ever goes into a URL.
import { ApiError, call, setToken, token } from "./api.js";
import { bucketView, bucketsView } from "./browse.js";
import { dashboardView } from "./dashboard.js";
import { printable } from "./dom.js";

const $ = (id) => document.getElementById(id);
let refreshTimer = null;
let rendering = 0;

const ctx = {
  whoami: null,
  say(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "status error" : "status";
  },
  // run an action; an error is shown, and a 401 signs out
  async act(fn) {
    try {
      await fn();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) signOut("Your token was refused");
      else ctx.say(`Error: ${err.message}`, true);
    }
  },
  rerender() {
    render();
  },
  refreshIn(ms) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(render, ms);
  },
};

const VIEWS = { "/buckets": bucketsView, "/bucket": bucketView, "/dashboard": dashboardView };

function route() {
  const hash = location.hash.replace(/^#/, "") || "/buckets";
  const [path, q] = hash.split("?");
  return { view: VIEWS[path] || bucketsView, params: new URLSearchParams(q || "") };
}

async function render() {
  clearTimeout(refreshTimer);
  if (!token() || !ctx.whoami) return;
  const mine = ++rendering;
  const { view, params } = route();
  // each render builds into its own element: a slower earlier one never overwrites a later one
  const fresh = document.createElement("div");
  await ctx.act(async () => {
    await view(fresh, ctx, params);
    if (mine !== rendering) return;
    $("view").replaceChildren(...fresh.childNodes);
    $("view").hidden = false;
  });
}

function signOut(message) {
  setToken(null);
  ctx.whoami = null;
  clearTimeout(refreshTimer);
  $("view").replaceChildren();
  $("view").hidden = true;
  $("nav").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("token").focus();
}

async function signIn() {
  try {
    ctx.whoami = await call("GET", "/whoami");
  } catch (err) {
    signOut(err instanceof ApiError && err.status === 401 ? "That token was refused" : err.message);
    return;
  }
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("who").textContent = `${printable(ctx.whoami.tenant)} (${ctx.whoami.role})`;
  await render();
}

function start() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    await signIn();
  });
  $("signout").addEventListener("click", () => signOut("Signed out"));
  window.addEventListener("hashchange", () => {
    ctx.say(""); // the last action's message belonged to the page left
    render();
  });
  if (token()) signIn();
  else signOut("");
}

start();
