"""Issue 15's "Act" and its done-when test in a real headless Chromium against a real cluster:
sign in, create a bucket and turn its versioning on, upload a folder of 50 files by the folder
input and see them listed, upload one of them again ("already stored": the nodes' byte
counters of chunk writes do not move), tag, share with a tenant, make public, copy, download
an old version and restore it, rename the folder (every key moved, with progress), share a
signed link and fetch it with plain curl (an attachment, nosniff, sandboxed), and see the
dedup dashboard change. Every dialog passes axe-core with no serious or critical violation
and is photographed; the console shows no error, failed request or CSP violation. Also: the
API grants no cross-site request anything (no CORS answer to another origin, no cookies).
"""

from __future__ import annotations

import random
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, http_json
from tests.browser.test_console import Watched, sign_in, user_token
from tests.e2e.conftest import started_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

METRICS_TOKEN = "dfs_browser-actions-metrics-token-0123456789abcdef"
WRITE_ROUTES = ("/store-chunk", "/store-chunks")  # every chunk a node receives comes here
BUCKET = "trips"
FILES = 50


@pytest.fixture
def metered_cluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalCluster]:
    """API + 3 nodes on SQLite whose nodes' /metrics answer a known token."""
    meta = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    env = {"DFS_METRICS_TOKEN": METRICS_TOKEN}
    with started_cluster(tmp_path, meta, monkeypatch, request, env=env) as c:
        yield c


def chunk_bytes_received(c: LocalCluster) -> float:
    """Body bytes every node has read on its chunk-write routes (the nodes' /metrics)."""
    total = 0.0
    for node in http_json(f"{c.api_url}/nodes", c.admin_token)["nodes"]:
        req = urllib.request.Request(f"{node['url']}/metrics")
        req.add_header("Authorization", f"Bearer {METRICS_TOKEN}")
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
        pattern = r'^dfs_http_request_bytes_total\{route="([^"]*)"\} (\S+)$'
        for m in re.finditer(pattern, text, re.M):
            if m.group(1) in WRITE_ROUTES:
                total += float(m.group(2))
    return total


def get_bytes(url: str, token: str | None = None) -> bytes:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return bytes(r.read())


def status_of(url: str, token: str | None = None) -> int:
    try:
        get_bytes(url, token)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code
    return 200


class Console:
    """The page with the steps of this test; ``w`` watches errors and takes screenshots."""

    def __init__(self, w: Watched, c: LocalCluster, token: str) -> None:
        self.w, self.page, self.c, self.token = w, w.page, c, token

    def api(self, path: str) -> Any:
        return http_json(f"{self.c.api_url}{path}", self.token)

    def dialog(self, name: str) -> Any:
        d = self.page.get_by_role("dialog", name=name)
        d.wait_for()
        return d

    def check_dialog(self, d: Any, shot: str) -> None:
        """Photograph the open dialog ``d`` and run axe-core on the page while it is open."""
        assert d.is_visible()
        self.w.shot(shot)
        self.w.accessible(shot)

    def close(self, d: Any) -> None:
        d.get_by_role("button", name="Close").click()
        d.wait_for(state="detached")

    def menu(self, label: str, action: str) -> None:
        """Open a row's More menu and choose ``action`` (e.g. "Versions of img-03.bin")."""
        self.page.get_by_label(f"More actions for {label}").click()
        self.page.get_by_role("button", name=action, exact=True).click()

    def upload(self, selector: str, paths: Any, state: str, count: int) -> None:
        self.page.set_input_files(selector, paths)
        self.page.get_by_role("button", name="Upload", exact=True).click()
        self.page.wait_for_function(
            "([s, n]) => [...document.querySelectorAll('.upload-state')]"
            ".filter(e => e.textContent === s).length === n",
            arg=[state, count],
            timeout=120_000,
        )

    def open_folder(self, name: str) -> None:
        self.page.get_by_role("link", name=name, exact=True).click()
        self.page.locator("tr.object").first.wait_for()

    def to_bucket_root(self) -> None:
        crumbs = self.page.get_by_role("navigation", name="Folder path")
        crumbs.get_by_role("link", name=BUCKET, exact=True).click()
        self.page.locator("tr.folder").first.wait_for()

    def saved_by_dedup(self) -> str:
        self.page.get_by_role("link", name="Dashboard").click()
        return str(self.page.locator("#usage-saved .value").text_content())


def create_versioned_bucket(con: Console) -> None:
    page = con.page
    page.get_by_label("New bucket").fill(BUCKET)
    page.get_by_role("button", name="Create bucket").click()
    page.get_by_role("link", name=BUCKET, exact=True).click()
    page.get_by_role("button", name="Bucket settings").click()
    d = con.dialog(f"Settings of bucket {BUCKET}")
    d.get_by_label("Versioning").select_option("enabled")
    d.get_by_role("button", name="Add grant").click()
    d.get_by_label("Grant 1 tenant").fill("erin")
    con.check_dialog(d, "actions-bucket-settings")
    d.get_by_role("button", name="Save settings").click()
    d.wait_for(state="detached")
    b = con.api(f"/buckets/{BUCKET}")
    assert (b["versioning"], b["access"], b["grants"]) == ("enabled", "private", {"erin": "read"})


def upload_fifty(con: Console, root: Path) -> dict[str, bytes]:
    rng = random.Random(1550)
    files = {}
    for i in range(FILES):
        name = f"img-{i:02}.bin"
        files[name] = rng.randbytes(rng.randrange(2_000, 40_000))
        (root / "holiday").mkdir(exist_ok=True)
        (root / "holiday" / name).write_bytes(files[name])
    con.upload("#upload-folder", str(root / "holiday"), "stored", FILES)
    con.open_folder("holiday/")
    names = con.page.locator("tr.object td.name")
    con.page.wait_for_function(f"() => document.querySelectorAll('tr.object').length === {FILES}")
    assert sorted(names.all_text_contents()) == sorted(files)
    con.w.shot("actions-folder-of-50")
    con.w.accessible("a folder of 50 files")
    return files


def upload_known_again(con: Console, data: bytes, root: Path) -> None:
    """Bytes the tenant stores already, under a new name: "already stored", and not one byte
    reaches a node (their chunk-write counters stay where they were)."""
    sent: list[str] = []

    def watch(r: Any) -> None:
        if "/upload?" in r.url:
            sent.append(r.url)

    con.page.on("request", watch)
    again = root / "again" / "img-07-again.bin"
    again.parent.mkdir()
    again.write_bytes(data)
    before = chunk_bytes_received(con.c)
    assert before > 0
    con.upload("#upload-files", str(again), "already stored", 1)
    con.page.locator("tr.object", has_text="img-07-again.bin").wait_for()
    assert chunk_bytes_received(con.c) == before
    con.page.remove_listener("request", watch)
    assert sent == []
    # a file record of its own: deleting either object never deletes the other's file
    same = [con.api(f"/object-info/{BUCKET}/holiday/{n}") for n in ("img-07.bin", again.name)]
    assert same[0]["sha256"] == same[1]["sha256"]
    assert same[0]["file_id"] != same[1]["file_id"]
    con.w.shot("actions-already-stored")


def tag_share_and_publish(con: Console) -> None:
    page = con.page
    con.menu("img-00.bin", "Tags of img-00.bin")
    d = con.dialog("Tags of holiday/img-00.bin")
    d.get_by_role("button", name="Add tag").click()
    d.get_by_label("Tag 1 name").fill("trip")
    d.get_by_label("Tag 1 value").fill("rome")
    con.check_dialog(d, "actions-tags")
    d.get_by_role("button", name="Save tags").click()
    d.wait_for(state="detached")
    tags = page.locator("tr.object", has_text="img-00.bin").locator("td.tags")
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr.object')].some("
        "r => r.textContent.includes('img-00.bin') && r.textContent.includes('trip=rome'))"
    )
    assert tags.text_content() == "trip=rome"

    con.menu("img-01.bin", "Access to img-01.bin")
    d = con.dialog("Access to holiday/img-01.bin")
    d.get_by_label("Shared with these tenants, too:").check()
    d.get_by_label("Tenants to share with").fill("dave")
    con.check_dialog(d, "actions-access")
    d.get_by_role("button", name="Save access").click()
    d.wait_for(state="detached")
    info = con.api(f"/object-info/{BUCKET}/holiday/img-01.bin")
    assert (info["access"], info["shared_with"]) == ("shared", ["dave"])

    con.menu("img-02.bin", "Access to img-02.bin")
    d = con.dialog("Access to holiday/img-02.bin")
    d.get_by_label("Public: anyone with its address, without a token").check()
    d.get_by_role("button", name="Save access").click()
    d.wait_for(state="detached")


def check_access(con: Console, files: dict[str, bytes], dave: str) -> None:
    base = f"{con.c.api_url}/objects/{BUCKET}/holiday"
    assert get_bytes(f"{base}/img-01.bin", dave) == files["img-01.bin"]  # shared with dave
    assert status_of(f"{base}/img-03.bin", dave) == 404  # not shared: looks missing
    assert get_bytes(f"{base}/img-02.bin") == files["img-02.bin"]  # public: no token
    assert status_of(f"{base}/img-05.bin") == 404  # private


def original_sha(con: Console, name: str) -> str:
    """The SHA-256 of the first version of holiday/NAME (the listing of every version)."""
    listing = con.api(f"/buckets/{BUCKET}/objects?prefix=holiday/{name}&versions=true")
    return str(listing["objects"][-1]["sha256"])


def copy_and_move(con: Console) -> None:
    con.menu("img-04.bin", "Copy or move img-04.bin")
    d = con.dialog("Copy or move holiday/img-04.bin")
    d.get_by_label("As key").fill("misc/img-04.bin")
    con.check_dialog(d, "actions-copy")
    d.get_by_role("button", name="Copy", exact=True).click()
    d.wait_for(state="detached")
    copied = con.api(f"/object-info/{BUCKET}/misc/img-04.bin")
    original = con.api(f"/object-info/{BUCKET}/holiday/img-04.bin")
    assert copied["file_id"] == original["file_id"]  # metadata only: the same stored file

    http_json(f"{con.c.api_url}/buckets", con.token, body={"name": "archive"})
    con.menu("img-08.bin", "Copy or move img-08.bin")
    d = con.dialog("Copy or move holiday/img-08.bin")
    d.get_by_label("To bucket").select_option("archive")
    d.get_by_label("Move (remove the original)").check()
    d.get_by_role("button", name="Move", exact=True).click()
    d.wait_for(state="detached")
    con.page.locator("tr.object", has_text="img-08.bin").wait_for(state="detached")
    moved = con.api("/object-info/archive/holiday/img-08.bin")
    assert moved["sha256"] == original_sha(con, "img-08.bin")


def restore_a_version(con: Console, files: dict[str, bytes], root: Path) -> None:
    """img-03.bin gets new bytes (a second version); the old one is downloaded from the
    versions dialog and restored: the key reads the old bytes again."""
    newer = root / "newer" / "img-03.bin"
    newer.parent.mkdir()
    newer.write_bytes(b"a newer img-03\n" * 50)
    con.upload("#upload-files", str(newer), "stored", 1)
    con.menu("img-03.bin", "Versions of img-03.bin")
    d = con.dialog("Versions of holiday/img-03.bin")
    rows = d.locator("tr.version")
    rows.nth(1).wait_for()
    assert rows.count() == 2
    old = rows.nth(1)
    con.check_dialog(d, "actions-versions")
    with con.page.expect_download() as info:
        old.get_by_role("button", name=re.compile("^Download version ")).click()
    assert Path(info.value.path()).read_bytes() == files["img-03.bin"]
    old.get_by_role("button", name=re.compile("^Restore version ")).click()
    d.get_by_text("it is the current one again").wait_for()
    assert rows.count() == 3
    con.w.shot("actions-versions-restored")
    con.page.once("dialog", lambda dlg: dlg.accept())
    rows.nth(1).get_by_role("button", name=re.compile("^Remove version ")).click()
    d.get_by_text("Removed version").wait_for()
    assert rows.count() == 2
    con.close(d)
    url = f"{con.c.api_url}/objects/{BUCKET}/holiday/img-03.bin"
    assert get_bytes(url, con.token) == files["img-03.bin"]


def rename_folder(con: Console, count: int) -> None:
    page = con.page
    con.to_bucket_root()
    page.get_by_role("button", name="Rename or move holiday/").click()
    d = con.dialog("Rename or move holiday/")
    d.get_by_label("New folder path").fill("summer")
    con.check_dialog(d, "actions-rename-folder")
    d.get_by_role("button", name="Move", exact=True).click()
    d.get_by_text(f"Moved {count} of {count} keys to {BUCKET}/summer/").wait_for(timeout=120_000)
    con.w.shot("actions-rename-folder-done")
    con.w.accessible("rename done")
    con.close(d)
    page.get_by_role("link", name="summer/").wait_for()
    assert page.get_by_role("link", name="holiday/").count() == 0
    listing = con.api(f"/buckets/{BUCKET}/objects?prefix=summer/")
    assert len(listing["objects"]) == count
    assert con.api(f"/buckets/{BUCKET}/objects?prefix=holiday/")["objects"] == []

    page.once("dialog", lambda dlg: dlg.accept())
    page.get_by_role("button", name="Delete folder misc/").click()
    page.get_by_role("link", name="misc/").wait_for(state="detached")


def share_link(con: Console, data: bytes, tmp: Path) -> None:
    """A signed link to summer/img-05.bin, copied to the clipboard and fetched by curl."""
    page = con.page
    con.open_folder("summer/")
    con.menu("img-05.bin", "Share link to img-05.bin")
    d = con.dialog("Share summer/img-05.bin")
    d.get_by_label("Expires in").select_option("300")
    d.get_by_role("button", name="Create link").click()
    d.get_by_text("Link copied to the clipboard").wait_for()
    con.check_dialog(d, "actions-share")
    link = d.get_by_label("Link").input_value()
    assert page.evaluate("() => navigator.clipboard.readText()") == link
    assert con.token not in link
    con.close(d)
    out, head = tmp / "shared.bin", tmp / "shared.headers"
    subprocess.run(
        ["curl", "-fsS", "--max-time", "30", "-D", str(head), "-o", str(out), link], check=True
    )
    assert out.read_bytes() == data
    headers = head.read_text().lower()
    assert "content-disposition: attachment" in headers
    assert "x-content-type-options: nosniff" in headers
    assert re.search(r"^content-security-policy:.*sandbox", headers, re.M)


def no_cross_site_power(c: LocalCluster, token: str) -> None:
    """The token travels in a header, never a cookie, and the API answers no other origin's
    CORS preflight: another site can neither make the browser send the token nor read."""
    evil = "https://evil.example"
    pre = urllib.request.Request(f"{c.api_url}/buckets/{BUCKET}", method="OPTIONS")
    pre.add_header("Origin", evil)
    pre.add_header("Access-Control-Request-Method", "DELETE")
    pre.add_header("Access-Control-Request-Headers", "authorization")
    try:
        with urllib.request.urlopen(pre, timeout=5) as r:
            headers = r.headers
    except urllib.error.HTTPError as e:
        headers = e.headers
        e.close()
    assert not [h for h in headers if h.lower().startswith("access-control-")], headers
    assert "Set-Cookie" not in headers
    # what a form on another site can send: no token, so nothing happens
    forged = urllib.request.Request(
        f"{c.api_url}/buckets", data=b'{"name": "forged"}', method="POST"
    )
    forged.add_header("Origin", evil)
    forged.add_header("Content-Type", "text/plain")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=5)
    refused.value.close()
    assert refused.value.code == 401
    names = [b["name"] for b in http_json(f"{c.api_url}/buckets", token)["buckets"]]
    assert "forged" not in names


def read_only_grantee(browser: Any, c: LocalCluster, erin: str, shots: Path) -> None:
    """erin holds a read grant on the bucket: the page offers her the same buttons, and the
    API refuses what her token may not do (the console adds no power). On a phone, in dark
    mode: the dialogs fit the screen."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True
    )
    con = Console(Watched(context, shots), c, erin)
    sign_in(con.w, c.api_url, erin)
    con.page.get_by_role("link", name=BUCKET, exact=True).click()
    con.page.get_by_role("button", name="Bucket settings").click()
    d = con.dialog(f"Settings of bucket {BUCKET}")
    d.get_by_text("Only the owner, carol, may change these settings.").wait_for()
    assert d.get_by_role("button", name="Save settings").is_disabled()
    assert con.page.evaluate("() => document.documentElement.scrollWidth") <= 390
    con.check_dialog(d, "actions-bucket-settings-not-owner")
    con.close(d)
    con.open_folder("summer/")
    con.menu("img-00.bin", "Tags of img-00.bin")
    d = con.dialog("Tags of summer/img-00.bin")
    d.get_by_label("Tag 1 value").fill("paris")
    d.get_by_role("button", name="Save tags").click()
    d.get_by_text("may only read bucket").wait_for()
    assert con.page.evaluate("() => document.documentElement.scrollWidth") <= 390
    con.check_dialog(d, "actions-refused")
    assert con.w.errors  # the refused PATCH, and only that
    assert all("403" in e for e in con.w.errors), con.w.errors
    assert con.api(f"/object-info/{BUCKET}/summer/img-00.bin")["tags"] == {"trip": "rome"}
    context.close()


def test_console_actions_in_chromium(
    browser: Any, metered_cluster: LocalCluster, screenshots: Path, tmp_path: Path
) -> None:
    c = metered_cluster
    token = user_token(c, "carol")
    dave = user_token(c, "dave")
    erin = user_token(c, "erin")
    context = browser.new_context(
        accept_downloads=True, permissions=["clipboard-read", "clipboard-write"]
    )
    con = Console(Watched(context, screenshots), c, token)
    sign_in(con.w, c.api_url, token)
    create_versioned_bucket(con)
    files = upload_fifty(con, tmp_path)
    saved = con.saved_by_dedup()
    con.w.shot("actions-dashboard-before")
    con.page.get_by_role("link", name="Buckets", exact=True).first.click()
    con.page.get_by_role("link", name=BUCKET, exact=True).click()
    con.open_folder("holiday/")
    upload_known_again(con, files["img-07.bin"], tmp_path)
    tag_share_and_publish(con)
    check_access(con, files, dave)
    con.page.get_by_label("More actions for img-06.bin").click()
    con.w.shot("actions-menu")
    con.w.accessible("a row's menu, open")
    con.page.get_by_label("More actions for img-06.bin").click()
    copy_and_move(con)
    restore_a_version(con, files, tmp_path)
    rename_folder(con, FILES)  # the 50, one more "already stored", one moved away
    share_link(con, files["img-05.bin"], tmp_path)
    no_cross_site_power(c, token)
    page = con.page
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_function(
        "(s) => document.querySelector('#usage-saved .value')?.textContent !== s", arg=saved
    )
    con.w.shot("actions-dashboard-after")
    con.w.accessible("dashboard after")
    assert not con.w.errors, con.w.errors
    context.close()
    read_only_grantee(browser, c, erin, screenshots)
