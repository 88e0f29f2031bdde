"""Issue 15's first slice in a real headless Chromium against a real cluster: sign in, create
a bucket, upload files through the page's file input (one named like markup), known bytes
again ("already stored", nothing sent) and a folder through its folder input, browse a
folder page by page, download, delete, the dashboard's chart for a user and the node list
for an admin (refreshed without a reload), a phone-sized dark page, axe-core's check on
every page, and no error or Content-Security-Policy violation in the console.
"""

from __future__ import annotations

import random
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster, http_json
from tests.browser.conftest import axe_violations

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

NASTY = '<img src=x onerror="window.pwned=1">.txt'
TIMEOUT_MS = 30_000
TRIP = ["trip/c.jpg", "trip/d.jpg", "trip/notes.txt", "trip/deep/e.txt", "trip/deep/f.bin"]


def user_token(cluster: LocalCluster, tenant: str) -> str:
    api, admin = cluster.api_url, cluster.admin_token
    http_json(f"{api}{protocol.ADMIN_TENANTS}", admin, body={"tenant": tenant})
    body = {"tenant": tenant, "role": "user", "label": "browser"}
    return str(http_json(f"{api}{protocol.ADMIN_TOKENS}", admin, body=body)["token"])


def api_upload(
    cluster: LocalCluster, token: str, bucket: str, key: str, data: bytes, **extra: str
) -> None:
    fields = {"bucket": bucket, "key": key, "filename": key.split("/")[-1], **extra}
    q = urllib.parse.urlencode(fields)
    req = urllib.request.Request(f"{cluster.api_url}/upload?{q}", data=data, method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201


class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    def __init__(self, context: Any, shots: Path) -> None:
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "response", lambda r: r.status >= 400 and self.errors.append(f"{r.status} {r.url}")
        )
        self.shots = shots

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def accessible(self, where: str) -> None:
        bad = axe_violations(self.page)
        assert not bad, f"{where}: " + "; ".join(f"{v['id']}: {v['help']}" for v in bad)


def sign_in(w: Watched, api: str, token: str) -> None:
    resp = w.page.goto(f"{api}/ui/")
    assert resp is not None
    assert resp.status == 200
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    w.page.get_by_label("API token").fill(token)
    w.page.get_by_role("button", name="Sign in").click()
    w.page.locator("#who").wait_for()
    assert token not in w.page.url
    assert w.page.evaluate("() => sessionStorage.getItem('dfs-console-token')") == token


def create_bucket_and_upload(w: Watched, files: dict[str, bytes], folder: Path) -> None:
    page = w.page
    w.accessible("sign-in done, buckets page")
    page.get_by_label("New bucket").fill("photos")
    page.get_by_role("button", name="Create bucket").click()
    page.get_by_role("link", name="photos", exact=True).click()
    page.locator("#upload-files").wait_for()
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    page.set_input_files("#upload-files", paths)
    page.get_by_role("button", name="Upload", exact=True).click()
    states = page.locator(".upload-state")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.upload-state')]"
        ".filter(e => e.textContent === 'stored').length === 3"
    )
    assert states.all_text_contents() == ["stored"] * 3
    names = page.locator("tr.object td.name")
    names.filter(has_text="b.bin").wait_for()
    assert sorted(names.all_text_contents()) == sorted(files)
    # the markup-like name is text: no element made from it, no script run
    assert page.locator("table img").count() == 0
    assert page.evaluate("() => window.pwned") is None
    w.shot("bucket")
    w.accessible("bucket listing")


def upload_known_again(w: Watched, data: bytes, folder: Path) -> None:
    """Bytes this tenant already stores: hashed in the page, made the new key's object by
    content (``PUT /objects`` with the sha256: a file record of its own), no upload sent."""
    page = w.page
    sent: list[str] = []

    def watch(r: Any) -> None:
        if "/upload" in r.url:
            sent.append(r.url)

    copy = folder / "again" / "a-copy.txt"
    copy.parent.mkdir()
    copy.write_bytes(data)
    page.on("request", watch)
    page.set_input_files("#upload-files", str(copy))
    page.get_by_role("button", name="Upload", exact=True).click()
    page.locator(".upload-state", has_text="already stored").wait_for()
    page.locator("tr.object", has_text="a-copy.txt").wait_for()
    page.remove_listener("request", watch)
    assert sent == []
    w.shot("bucket-already-stored")


def upload_folder(w: Watched, folder: Path) -> None:
    """A folder through the folder input: its files keep their paths (trip/..., trip/deep/...)."""
    page = w.page
    for name in TRIP:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode() * 100)
    page.set_input_files("#upload-folder", str(folder / "trip"))
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('.upload-state')]"
        ".filter(e => e.textContent === 'stored').length === n",
        arg=len(TRIP),
    )
    assert page.locator("#upload-total").evaluate("e => e.value") == 1
    page.get_by_role("link", name="trip/").click()
    page.get_by_role("link", name="deep/").wait_for()
    names = page.locator("tr.object td.name").all_text_contents()
    assert sorted(names) == sorted(n.removeprefix("trip/") for n in TRIP if "deep" not in n)


def browse_pages(w: Watched) -> None:
    page = w.page
    page.get_by_role("link", name="Buckets", exact=True).first.click()
    page.get_by_role("link", name="photos", exact=True).click()
    page.get_by_role("link", name="many/").click()
    page.get_by_label("Per page").select_option("10")
    page.locator("text=page 1").wait_for()
    rows = page.locator("tr.object td.name")
    page.wait_for_function("() => document.querySelectorAll('tr.object').length === 10")
    first = rows.all_text_contents()
    assert page.locator("tr.object", has_text="f00.txt").locator("td.tags").text_content() == (
        "trip=rome"
    )
    page.get_by_role("button", name="Next page").click()
    page.locator("text=page 2").wait_for()
    page.wait_for_function("() => document.querySelectorAll('tr.object').length === 2")
    assert sorted(first + rows.all_text_contents()) == [f"f{i:02}.txt" for i in range(12)]
    assert page.get_by_role("button", name="Next page").is_disabled()
    page.get_by_role("button", name="First page").click()
    page.locator("text=page 1").wait_for()
    page.get_by_label("Keys containing").fill("f1")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("table", name="Search results").wait_for()
    assert sorted(rows.all_text_contents()) == ["f10.txt", "f11.txt"]


def download_and_delete(w: Watched, files: dict[str, bytes]) -> None:
    page = w.page
    page.get_by_role("navigation", name="Folder path").get_by_role("link", name="photos").click()
    page.locator("tr.folder").first.wait_for()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download a.txt").click()
    download = info.value
    assert download.suggested_filename == "a.txt"
    assert Path(download.path()).read_bytes() == files["a.txt"]
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete b.bin").click()
    page.locator("tr.object", has_text="b.bin").wait_for(state="detached")
    assert page.locator("tr.object", has_text="a.txt").count() == 1


def user_dashboard(w: Watched, again: Any) -> None:
    """The user's counters and chart; ``again()`` stores known bytes under a new key, and the
    dashboard shows more saved by dedup at its next refresh, without a reload."""
    page = w.page
    page.get_by_role("link", name="Dashboard").click()
    page.locator("svg.chart").first.wait_for()
    assert page.locator("#usage-objects .value").text_content() == str(4 + len(TRIP) + 12 - 1)
    bars = page.locator("svg.chart rect")
    assert bars.count() >= 3
    folders = page.get_by_role("img", name="Logical bytes per folder of photos")
    assert "many" in folders.text_content()
    assert "(top level)" in folders.text_content()
    w.shot("dashboard")
    w.accessible("dashboard")
    saved = page.locator("#usage-saved .value").text_content()
    page.evaluate("() => { window.noReload = 1; }")
    again()
    page.wait_for_function(
        "(s) => document.querySelector('#usage-saved .value')?.textContent !== s", arg=saved
    )
    assert page.evaluate("() => window.noReload") == 1
    assert page.locator("#usage-objects .value").text_content() == str(4 + len(TRIP) + 12)
    w.shot("dashboard-after-dedup")


def admin_dashboard(w: Watched, api: str, admin_token: str) -> None:
    page = w.page
    sign_in(w, api, admin_token)
    page.get_by_role("link", name="Dashboard").click()
    page.locator("#nodes tbody tr").nth(2).wait_for()
    assert page.locator("#nodes tbody tr").count() == 3
    assert page.locator("#nodes td.live").count() == 3
    page.evaluate("() => { window.noReload = 1; }")
    before = page.locator("#nodes p.hint").text_content()
    page.wait_for_function(
        "(b) => document.querySelector('#nodes p.hint')?.textContent !== b", arg=before
    )
    assert page.evaluate("() => window.noReload") == 1  # refreshed in place
    w.shot("dashboard-admin")
    w.accessible("admin dashboard")


def test_console_in_chromium(
    browser: Any, sqlite_cluster: LocalCluster, screenshots: Path, tmp_path: Path
) -> None:
    c = sqlite_cluster
    token = user_token(c, "alice")
    rng = random.Random(15)
    files = {"a.txt": b"hello console\n", "b.bin": rng.randbytes(300_000), NASTY: b"<b>x</b>"}
    context = browser.new_context(accept_downloads=True)
    w = Watched(context, screenshots)
    w.page.goto(f"{c.api_url}/ui/")
    w.page.get_by_label("API token").wait_for()
    w.shot("sign-in")
    w.accessible("sign-in page")
    sign_in(w, c.api_url, token)
    create_bucket_and_upload(w, files, tmp_path)
    upload_known_again(w, files["a.txt"], tmp_path)
    upload_folder(w, tmp_path)
    for i in range(12):
        tags = {"tag-trip": "rome"} if i == 0 else {}
        api_upload(c, token, "photos", f"many/f{i:02}.txt", f"file {i}".encode(), **tags)
    browse_pages(w)
    download_and_delete(w, files)
    user_dashboard(w, lambda: api_upload(c, token, "photos", "copy-of-a.txt", files["a.txt"]))
    assert not w.errors, w.errors
    context.close()

    admin = Watched(browser.new_context(), screenshots)
    admin_dashboard(admin, c.api_url, c.admin_token)
    assert not admin.errors, admin.errors


def dot_segment_keys(w: Watched, c: LocalCluster, token: str) -> None:
    """A key with ".." segments is acted on as itself: the browser's URL parser would drop
    them from a path (x/../keep.txt naming keep.txt), so deleting the trap deletes keep.txt
    unless the page escapes them. Invisible direction overrides and C1 controls in a name are
    shown as escapes. And the page's calls never leave this origin."""
    page = w.page
    api_upload(c, token, "phone-pics", "keep.txt", b"keep me")
    api_upload(c, token, "phone-pics", "x/../keep.txt", b"a trap")
    api_upload(c, token, "phone-pics", "x/../cod\u202etxt.exe\u0085", b"spoof")
    page.goto(f"{c.api_url}/ui/#/bucket?name=phone-pics&prefix=x%2F")
    page.get_by_role("link", name="../").click()  # the folder x/../, as the listing says
    row = page.locator("tr.object", has_text="keep.txt")
    row.wait_for()
    # a direction override and a C1 control are shown as escapes, not obeyed or hidden
    names = page.locator("tr.object td.name").all_inner_texts()
    assert "cod\\u202Etxt.exe\\x85" in names, names
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete keep.txt").click()
    row.wait_for(state="detached")
    keys = [
        o["key"] for o in http_json(f"{c.api_url}/buckets/phone-pics/objects", token)["objects"]
    ]
    assert "keep.txt" in keys
    assert "x/../keep.txt" not in keys
    refused = page.evaluate(
        r"""async () => {
            const api = await import("/ui/api.js");
            const out = [];
            for (const p of ["//example.invalid/x", "/\\example.invalid/x", "https://example.invalid/"]) {
                try { await api.call("GET", p); out.push("sent " + p); }
                catch (e) { out.push(String(e.message).startsWith("not a local path")); }
            }
            return out;
        }"""
    )
    assert refused == [True, True, True]


def test_console_on_a_phone_in_dark_mode(
    browser: Any, sqlite_cluster: LocalCluster, screenshots: Path
) -> None:
    c = sqlite_cluster
    token = user_token(c, "bob")
    http_json(f"{c.api_url}{protocol.BUCKETS}", token, body={"name": "phone-pics"})
    api_upload(c, token, "phone-pics", "holiday/" + "a-rather-long-file-name-" * 4 + ".jpg", b"j")
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True
    )
    w = Watched(context, screenshots)
    w.page.goto(f"{c.api_url}/ui/")
    w.page.get_by_label("API token").fill("dfs_not-a-token")
    w.page.get_by_role("button", name="Sign in").click()
    w.page.get_by_role("alert").filter(has_text="That token was refused").wait_for()
    assert w.page.evaluate("() => sessionStorage.getItem('dfs-console-token')") is None
    assert all("401" in e for e in w.errors), w.errors  # the refused /whoami only
    w.errors.clear()
    sign_in(w, c.api_url, token)
    w.page.get_by_role("heading", name="Buckets").wait_for()
    background = w.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    width = w.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    w.shot("phone-dark-buckets")
    w.accessible("phone, dark")
    w.page.get_by_role("link", name="phone-pics").click()
    w.page.get_by_role("link", name="holiday/").click()
    w.page.locator("tr.object").wait_for()
    assert w.page.evaluate("() => document.documentElement.scrollWidth") <= 390
    w.shot("phone-dark-folder")
    w.accessible("phone, dark, folder")
    dot_segment_keys(w, c, token)
    w.page.get_by_role("button", name="Sign out").click()
    assert w.page.evaluate("() => sessionStorage.getItem('dfs-console-token')") is None
    assert not w.errors, w.errors
    context.close()
