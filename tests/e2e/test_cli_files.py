"""The CLI's side of the local file system, through real subprocesses against a cluster on
loopback (issue 16 Broken 3, 4 and Friction; issue 12 item 10): where downloads land and
what they refuse to overwrite, skipped files in uploads, symbolic links, standard input and
output, escaped names, unsafe stored names and a link planted at the temp file's name."""

from __future__ import annotations

import ctypes
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from dfs.client.file_cache import RACY_NS
from dfs.localcluster import LocalCluster, console_script
from tests.e2e.conftest import CLI_TIMEOUT, cli_json, run_cli

pytestmark = pytest.mark.e2e

PARTIAL = 23


def _without_dac_override() -> None:
    """In the child before exec: root without CAP_DAC_OVERRIDE/READ_SEARCH, so that mode
    000 denies it as it denies everyone else (the tests may run as root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def cli(
    *args: str, stdin: bytes = b"", as_user: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """dfs-client with bytes in and out (``as_user``: permissions apply even to root)."""
    return subprocess.run(
        [console_script("dfs-client"), *args],
        input=stdin,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
        preexec_fn=_without_dac_override if as_user and os.geteuid() == 0 else None,
    )


def _error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), lines
    assert "dfs-part" not in proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def _upload_as(api: str, src: Path, name: str) -> str:
    return run_cli("upload", api, str(src), "--name", name).stdout.strip()


def test_download_into_directory_keeps_names_refuses_collisions_and_overwrites(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    api = sqlite_cluster.api_url
    tree = tmp_path / "tree"
    for sub in ("a", "b"):
        (tree / sub).mkdir(parents=True)
        (tree / sub / "x.txt").write_text(f"{sub}\n" * 1000)
    lines = run_cli("upload", "--prefix", "p/", api, str(tree)).stdout.splitlines()
    ids = {name: i for i, name in (line.split("\t") for line in lines)}
    id_a, id_b = ids["p/a/x.txt"], ids["p/b/x.txt"]
    out = tmp_path / "out"
    # several ids into a directory: the stored relative names, not the shared basename
    run_cli("download", api, id_a, id_b, str(out))
    assert (out / "p" / "a" / "x.txt").read_text() == "a\n" * 1000
    assert (out / "p" / "b" / "x.txt").read_text() == "b\n" * 1000
    # two files stored under one name: refused before anything is written
    (tmp_path / "one").write_text("one")
    (tmp_path / "two").write_text("two")
    same = [_upload_as(api, tmp_path / n, "dup/same.txt") for n in ("one", "two")]
    line = _error_line(run_cli("download", api, *same, str(tmp_path / "o2"), check=False), 2)
    assert "would both be written to" in line
    assert not (tmp_path / "o2").exists()
    # an existing file with other bytes is never replaced silently
    (out / "p" / "a" / "x.txt").write_text("mine")
    line = _error_line(run_cli("download", api, id_a, id_b, str(out), check=False), 5)
    assert "--force" in line
    assert str(out / "p" / "a" / "x.txt") in line
    assert (out / "p" / "a" / "x.txt").read_text() == "mine"
    single = tmp_path / "single.txt"
    single.write_text("other")
    _error_line(run_cli("download", api, id_a, str(single), check=False), 5)
    assert single.read_text() == "other"
    run_cli("download", "--force", api, id_a, str(single))
    assert single.read_text() == "a\n" * 1000
    rows = cli_json("download", "-f", api, id_a, id_b, str(out))
    assert {r["unchanged"] for r in rows} == {False, True}  # a replaced, b left as it was
    assert (out / "p" / "a" / "x.txt").read_text() == "a\n" * 1000
    rows = cli_json("download", api, id_a, id_b, str(out))  # all there: nothing to do
    assert [r["unchanged"] for r in rows] == [True, True]
    assert not list(out.rglob("*.dfs-part*"))


def test_download_trailing_slash_is_a_directory_and_missing_parents_are_named(
    sqlite_cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = sqlite_cluster.api_url
    src = tmp_path / "doc.txt"
    src.write_text("hello\n")
    file_id = _upload_as(api, src, "docs/doc.txt")
    monkeypatch.chdir(tmp_path)  # the user's relative paths, as typed
    run_cli("download", api, file_id, "fresh/")
    assert (tmp_path / "fresh" / "docs" / "doc.txt").read_text() == "hello\n"
    line = _error_line(run_cli("download", api, file_id, "missing/sub/f.txt", check=False), 2)
    assert line == (
        "Error: cannot write missing/sub/f.txt: the directory missing/sub does not exist"
    )
    assert not (tmp_path / "missing").exists()
    (tmp_path / "plain").write_text("x")
    line = _error_line(run_cli("download", api, file_id, "plain/", check=False), 2)
    assert "plain/ is not a directory" in line
    assert (tmp_path / "plain").read_text() == "x"


def test_upload_skips_unreadable_files_and_symlinks_then_exits_partial(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    api = sqlite_cluster.api_url
    outside = tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside the tree")
    (outside / "d" / "inner.txt").write_text("inner")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "ok.txt").write_text("ok")
    (tree / "sub" / "deep.txt").write_text("deep")
    (tree / "locked.txt").write_text("locked")
    (tree / "locked.txt").chmod(0)
    (tree / "file-link").symlink_to(outside / "secret.txt")
    (tree / "dir-link").symlink_to(outside / "d")
    (tree / "loop").symlink_to(tree)
    os.mkfifo(tree / "fifo")
    proc = cli("upload", "--prefix", "s/", api, str(tree), as_user=True)
    err = proc.stderr.decode()
    assert proc.returncode == PARTIAL, err
    skipped = sorted(line for line in err.splitlines() if line.startswith("Skipped: "))
    assert skipped == [
        f"Skipped: {tree / 'dir-link'}: symbolic link to a directory not followed "
        "(-L follows links)",
        f"Skipped: {tree / 'fifo'}: not a regular file",
        f"Skipped: {tree / 'file-link'}: symbolic link not followed (-L follows links)",
        f"Skipped: {tree / 'locked.txt'}: Permission denied",
        f"Skipped: {tree / 'loop'}: symbolic link to a directory not followed (-L follows links)",
    ]
    assert err.strip().splitlines()[-1].startswith("Error: 5 files skipped")
    uploaded = sorted(line.split("\t")[1] for line in proc.stdout.decode().splitlines())
    assert uploaded == ["s/ok.txt", "s/sub/deep.txt"]
    # -L follows links to files and directories, and a link back up the tree only once
    (tree / "locked.txt").unlink()
    (tree / "fifo").unlink()
    rows = cli_json("upload", "-L", "--prefix", "L/", api, str(tree))
    assert sorted(r["name"] for r in rows) == [
        "L/dir-link/inner.txt",
        "L/file-link",
        "L/ok.txt",
        "L/sub/deep.txt",
    ]


def test_stdin_upload_and_stdout_download(sqlite_cluster: LocalCluster, tmp_path: Path) -> None:
    api = sqlite_cluster.api_url
    data = random.Random(4).randbytes(3 << 20)
    up = cli("upload", api, "-", "--name", "piped/data.bin", "--quiet", stdin=data)
    assert up.returncode == 0, up.stderr
    file_id = up.stdout.decode().strip()
    [meta] = cli_json("stat", api, file_id)
    assert meta["name"] == "piped/data.bin"
    assert meta["size"] == len(data)
    down = cli("download", api, file_id, "-")
    assert down.returncode == 0, down.stderr
    assert down.stdout == data  # the bytes and nothing else on stdout
    assert not list(Path(tempfile.gettempdir()).glob("dfs-stdin-*"))  # the spooled copy went
    no_name = cli("upload", api, "-", stdin=b"x")
    assert no_name.returncode == 2
    assert b"--name" in no_name.stderr


def test_names_are_escaped_unsafe_names_skipped_and_planted_links_ignored(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    api = sqlite_cluster.api_url
    src = tmp_path / "f.txt"
    src.write_text("payload\n")
    evil = "e/\x1b]0;pwned\x07red\x1b[31m.txt"
    evil_id = _upload_as(api, src, evil)
    ls = cli("ls", api).stdout.decode()
    assert "\x1b" not in ls
    assert "\x07" not in ls
    assert "e/\\x1b]0;pwned\\x07red\\x1b[31m.txt" in ls
    assert [f["name"] for f in cli_json("ls", api)] == [evil]  # --json stays exact
    assert "\x1b" not in cli("stat", api, evil_id).stdout.decode()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "bell\x07.txt").write_text("ding")
    (tree / "plain.txt").write_text("plain")
    lines = cli("upload", "--prefix", "t/", api, str(tree)).stdout.decode().splitlines()
    assert sorted(line.split("\t")[1] for line in lines) == ["t/bell\\x07.txt", "t/plain.txt"]
    down = cli("download", api, evil_id, str(tmp_path / "d") + "/")
    assert down.returncode == 0
    assert b"\x1b" not in down.stdout
    # one unsafe stored name: skipped and reported; the rest of the prefix is written
    good = _upload_as(api, src, "u/good.txt")
    _upload_as(api, src, "u/../../escaped.txt")
    proc = run_cli("download", "--prefix", "u/", api, str(tmp_path / "r" / "x"), check=False)
    assert proc.returncode == PARTIAL, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("Skipped: u/../../escaped.txt: ")
    assert (tmp_path / "r" / "x" / "u" / "good.txt").read_text() == "payload\n"
    assert not (tmp_path / "r" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
    # a link planted at the predictable temp file (and sidecar) names is never written through
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "t.txt"
    (tmp_path / f".t.txt.{good}.dfs-part").symlink_to(victim)
    (tmp_path / f".t.txt.{good}.dfs-part.done").symlink_to(victim)
    run_cli("download", api, good, str(target))
    assert target.read_text() == "payload\n"
    assert victim.read_text() == "precious"
    (tmp_path / f".t2.txt.{good}.dfs-part.done").symlink_to(victim)  # the sidecar alone
    run_cli("download", api, good, str(tmp_path / "t2.txt"))
    assert (tmp_path / "t2.txt").read_text() == "payload\n"
    assert victim.read_text() == "precious"
    rows = [json.loads(x) for x in run_cli("ls", "--json", api).stdout.splitlines()]
    assert evil in {r.get("name") for r in rows}


def _older_than_the_racy_window(root: Path) -> None:
    """Wait (bounded) until every file under ``root`` changed more than ``RACY_NS`` ago, so
    that the files cache of the next run trusts them."""
    newest = max(p.stat().st_ctime_ns for p in root.rglob("*") if p.is_file())
    deadline = time.monotonic() + 10
    while time.time_ns() - newest <= RACY_NS:
        assert time.monotonic() < deadline, "the clock did not move past the racy window"
        time.sleep(0.05)


def test_a_second_backup_sends_nothing_and_stores_each_file_once(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster = sqlite_cluster
    # enough files for several batches of the first ones planned beside the imports
    # (dfs.client.early_batches), and a big one among them
    src = tmp_path / "src"
    rng = random.Random(3)
    content = {}
    for i in range(700):
        data = rng.randbytes(9 * 1024 * 1024 if i == 300 else rng.choice([0, 40, 3000]))
        (src / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 7}" / f"f{i:03}").write_bytes(data)
        content[f"d{i % 7}/f{i:03}"] = data
    _older_than_the_racy_window(src)
    first = cli_json("upload", "--prefix", "v1/", cluster.api_url, str(src))
    second = cli_json("upload", "--prefix", "v2/", cluster.api_url, str(src))
    assert sorted(r["name"] for r in first) == sorted(f"v1/{n}" for n in content)
    assert sorted(r["name"] for r in second) == sorted(f"v2/{n}" for n in content)
    assert [r["bytes_sent"] for r in second] == [0] * len(content)  # the cache: nothing sent
    listed = [f["name"] for f in cli_json("ls", "--all", cluster.api_url)]
    assert sorted(n for n in listed if n.startswith("v2/")) == sorted(r["name"] for r in second)
    one = next(r for r in second if r["name"] == "v2/d3/f010")
    out = tmp_path / "out"
    run_cli("download", cluster.api_url, one["file_id"], str(out))
    assert out.read_bytes() == content["d3/f010"]
