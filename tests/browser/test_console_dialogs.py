"""The console's folder, Tags and Access dialogs in a real headless Chromium against a real
cluster, where they could lose or expose data: a folder copy or move that would write a key
it has still to copy (moving a/b/ to a/ writes a/b/b/x onto a/b/x) is refused before any key
is touched; Access and Tags change the version their row showed, never one a read-write
grantee wrote while the dialog was open (which Save would have made public); tags saved
unchanged come back as they were (a name with a leading space, a name "__proto__"); and the
direction mark U+061C in a key is shown as an escape, like the other invisible marks.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, http_json
from tests.browser.test_console import Watched, api_upload, sign_in, user_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def api(c: LocalCluster, token: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"{c.api_url}{path}", data=json.dumps(body).encode(), method=method
    )
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def read_key(c: LocalCluster, bucket: str, key: str, token: str | None = None, **q: str) -> Any:
    """The object's bytes, or the HTTP status that refused them."""
    query = f"?{urllib.parse.urlencode(q)}" if q else ""
    req = urllib.request.Request(f"{c.api_url}/objects/{bucket}/{urllib.parse.quote(key)}{query}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


def versions(c: LocalCluster, token: str, bucket: str, key: str) -> list[dict[str, Any]]:
    """Every version of ``key``, newest first."""
    q = urllib.parse.urlencode({"prefix": key, "versions": "true"})
    return list(http_json(f"{c.api_url}/buckets/{bucket}/objects?{q}", token)["objects"])


def signed_in(browser: Any, c: LocalCluster, token: str, shots: Path) -> Watched:
    w = Watched(browser.new_context(), shots)
    sign_in(w, c.api_url, token)
    return w


def folder_dialog(w: Watched, action: str, folder: str, target: str, verb: str) -> Any:
    """Open the folder row's ``action`` dialog, ask for ``target`` and press ``verb``."""
    w.page.get_by_role("button", name=f"{action} {folder}", exact=True).click()
    title = "Rename or move" if action == "Rename or move" else "Copy"
    d = w.page.get_by_role("dialog", name=f"{title} {folder}")
    d.wait_for()
    d.get_by_label("New folder path").fill(target)
    d.get_by_role("button", name=verb, exact=True).click()
    return d


def test_a_folder_copy_that_would_overwrite_its_own_keys_is_refused(
    browser: Any, sqlite_cluster: LocalCluster, screenshots: Path
) -> None:
    c = sqlite_cluster
    token = user_token(c, "alice")
    http_json(f"{c.api_url}/buckets", token, body={"name": "tree"})
    before = {"a/b/x": b"ORIGINAL a/b/x", "a/b/b/x": b"ORIGINAL a/b/b/x", "a/c/y": b"y"}
    for key, data in before.items():
        api_upload(c, token, "tree", key, data)
    w = signed_in(browser, c, token, screenshots)
    w.page.goto(f"{c.api_url}/ui/#/bucket?name=tree&prefix=a%2F")
    for action, verb in (("Rename or move", "Move"), ("Copy", "Copy")):
        d = folder_dialog(w, action, "a/b/", "a/", verb)
        message = d.locator(".dialog-message")
        message.filter(has_text=re.compile(r"^Error|2 of 2 keys to")).wait_for()  # done either way
        assert {k: read_key(c, "tree", k, token) for k in before} == before
        assert "a/b/x would be overwritten before it is" in str(message.text_content())
        assert "error" in str(message.get_attribute("class"))
        w.shot(f"folder-{verb.lower()}-refused")
        d.get_by_role("button", name="Close").click()
        d.wait_for(state="detached")
    keys = [o["key"] for o in http_json(f"{c.api_url}/buckets/tree/objects", token)["objects"]]
    assert sorted(keys) == sorted(before)  # nothing written under a/ either

    # up one level where no key lands on another: allowed, every key moved
    d = folder_dialog(w, "Rename or move", "a/c/", "a/", "Move")
    d.get_by_text("Moved 1 of 1 keys to tree/a/").wait_for()
    assert read_key(c, "tree", "a/y", token) == b"y"
    assert read_key(c, "tree", "a/c/y", token) == 404
    assert read_key(c, "tree", "a/b/x", token) == before["a/b/x"]
    assert not w.errors, w.errors


def open_object_dialog(w: Watched, action: str, key: str) -> Any:
    w.page.get_by_label(f"More actions for {key}").click()
    w.page.get_by_role("button", name=f"{action} {key}", exact=True).click()
    d = w.page.get_by_role("dialog", name=f"{action} {key}")
    d.wait_for()
    return d


def test_access_and_tags_change_the_version_the_dialog_showed(
    browser: Any, sqlite_cluster: LocalCluster, screenshots: Path
) -> None:
    c = sqlite_cluster
    alice, bob = user_token(c, "alice"), user_token(c, "bob")
    http_json(f"{c.api_url}/buckets", alice, body={"name": "shared"})
    grants = {"versioning": "enabled", "grants": {"bob": "read-write"}}
    api(c, alice, "PATCH", "/buckets/shared", grants)
    api_upload(c, alice, "shared", "report.txt", b"v1: the report alice reviewed")
    w = signed_in(browser, c, alice, screenshots)
    page = w.page
    page.goto(f"{c.api_url}/ui/#/bucket?name=shared")

    d = open_object_dialog(w, "Access to", "report.txt")
    api_upload(c, bob, "shared", "report.txt", b"v2: bob's bytes alice never saw")
    d.get_by_label("Public: anyone with its address, without a token").check()
    d.get_by_role("button", name="Save access").click()
    d.wait_for(state="detached")
    v2, v1 = versions(c, alice, "shared", "report.txt")
    assert (v1["access"], v2["access"]) == ("public-read", "private")
    assert read_key(c, "shared", "report.txt") == 404  # the current one: bob's, private
    assert (
        read_key(c, "shared", "report.txt", version=v1["version_id"])
        == b"v1: the report alice reviewed"
    )

    page.get_by_text("a newer one, written since, is unchanged").wait_for()

    # the listing shows bob's version now; bob writes another while its Tags dialog is open
    page.locator("tr.object", has_text="report.txt").wait_for()
    d = open_object_dialog(w, "Tags of", "report.txt")
    api_upload(c, bob, "shared", "report.txt", b"v3: written while the tags were edited")
    d.get_by_role("button", name="Add tag").click()
    d.get_by_label("Tag 1 name").fill("reviewed")
    d.get_by_label("Tag 1 value").fill("yes")
    d.get_by_role("button", name="Save tags").click()
    d.wait_for(state="detached")
    now = versions(c, alice, "shared", "report.txt")
    tags = {v["version_id"]: v["tags"] for v in now}
    assert tags == {
        now[0]["version_id"]: {},
        v2["version_id"]: {"reviewed": "yes"},
        v1["version_id"]: {},
    }
    page.get_by_text(re.compile("Saved 1 tags on report.txt .*unchanged")).wait_for()
    assert not w.errors, w.errors


def test_tags_saved_unchanged_stay_as_they_were_and_marks_are_escaped(
    browser: Any, sqlite_cluster: LocalCluster, screenshots: Path
) -> None:
    c = sqlite_cluster
    token = user_token(c, "carol")
    http_json(f"{c.api_url}/buckets", token, body={"name": "plain"})  # unversioned: "null"
    api_upload(c, token, "plain", "doc.txt", b"hello")
    tags = {"__proto__": "x", " env": "prod", "team": "blue"}
    assert api(c, token, "PATCH", "/object-info/plain/doc.txt", {"tags": tags})["tags"] == tags
    api_upload(c, token, "plain", "invoice\u061c2023-2024.pdf", b"x")
    w = signed_in(browser, c, token, screenshots)
    w.page.goto(f"{c.api_url}/ui/#/bucket?name=plain")
    d = open_object_dialog(w, "Tags of", "doc.txt")
    shown = [i.input_value() for i in d.locator(".tag-name").all()]
    assert sorted(shown) == sorted(tags)
    d.get_by_role("button", name="Save tags").click()
    d.wait_for(state="detached")
    info = http_json(f"{c.api_url}/object-info/plain/doc.txt", token)
    assert (info["tags"], info["version_id"]) == (tags, "null")
    w.page.get_by_text("Saved 3 tags on doc.txt").wait_for()
    # an Arabic letter mark reorders what follows it like U+200F does: shown as an escape
    names = w.page.locator("tr.object td.name")
    names.first.wait_for()
    assert "invoice\\u061C2023-2024.pdf" in names.all_inner_texts()
    assert not w.errors, w.errors
