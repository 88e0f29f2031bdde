"""A chaos soak: S3 clients and the native CLI write, overwrite, delete and read while nodes,
the API and the S3 gateway are killed (-9) and stopped (SIGSTOP), and one node's chunk files
are deleted, flipped or its whole disk wiped. Then everything is healed, repair is waited for,
and every object acknowledged is read back and compared.

    python -m bench.chaos [--seconds 300] [--seed 1] [--heartbeat-timeout 15] [--dir DIR]

Four nodes at REPLICATION_FACTOR=2, SQLite metadata, short GC grace, repair, scrub and
compaction intervals so those loops run during the soak. Destructive faults (deleted or
flipped chunk files, a wiped disk) only ever hit node 1, so every chunk keeps a good copy
elsewhere: any object that does not read back exactly is dfs's fault. Operations that fail
during faults are counted, not errors: the client then does not know which version a key
holds, and either is accepted. Exit status 1 when any object read back wrong or repair never
reported a clean pass. Not a timed benchmark; a tool for finding durability bugs (the
closing notes of the stops that ran it give what it found).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from dfs.localcluster import S3_KEY_ID, S3_SECRET, LocalCluster, ensure_user_token, http_json

MIB = 1 << 20
VICTIM = 1  # the one node whose disk is damaged
BLOCKS = [random.Random(i).randbytes(256 * 1024) for i in range(32)]  # shared: dedup
CLUSTER_ENV = {
    "DFS_GC_GRACE": "40",
    "DFS_GC_INTERVAL": "3",
    "DFS_ORPHAN_INTERVAL": "7",
    "DFS_REPAIR_INTERVAL": "2",
    "DFS_REPAIR_GRACE": "6",
    "DFS_REPAIR_FULL_SCAN": "15",
    "DFS_SCRUB_INTERVAL": "10",
    "DFS_SCRUB_RATE": str(256 * MIB),
    "DFS_COMPACT_INTERVAL": "5",
    "DFS_REPAIR_RATE": str(512 * MIB),
}


@dataclass
class Soak:
    """What the soak knows: the key states the clients were told, and what went wrong."""

    t0: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    expected: dict[str, str | None] = field(default_factory=dict)  # key -> sha256 or deleted
    uncertain: dict[str, set[str | None]] = field(default_factory=dict)  # failed ops' outcomes
    native: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failed_ops: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def log(self, *parts: object) -> None:
        with self.lock:
            print(f"{time.monotonic() - self.t0:7.1f}", *parts, flush=True)

    def problem(self, msg: str) -> None:
        self.log("PROBLEM", msg)
        self.problems.append(msg)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content(rng: random.Random) -> bytes:
    """Half small random bodies, most of the rest built from shared blocks (so chunks are
    shared across objects), a tenth 12 MiB (multipart)."""
    kind = rng.random()
    if kind < 0.5:
        return rng.randbytes(rng.randint(0, 64 * 1024))
    if kind < 0.9:
        parts = [rng.choice(BLOCKS) for _ in range(rng.randint(2, 20))]
        parts.insert(rng.randint(0, len(parts)), rng.randbytes(rng.randint(1, 500)))
        return b"".join(parts)
    return b"".join(rng.choice(BLOCKS) for _ in range(48)) + rng.randbytes(1000)


def put(s3: Any, key: str, body: bytes) -> None:
    if len(body) <= 8 * MIB:
        s3.put_object(Bucket="chaos", Key=key, Body=body)
        return
    uid = s3.create_multipart_upload(Bucket="chaos", Key=key)["UploadId"]
    parts = []
    for n, off in enumerate(range(0, len(body), 5 * MIB), 1):
        piece = body[off : off + 5 * MIB]
        etag = s3.upload_part(Bucket="chaos", Key=key, UploadId=uid, PartNumber=n, Body=piece)[
            "ETag"
        ]
        parts.append({"PartNumber": n, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket="chaos", Key=key, UploadId=uid, MultipartUpload={"Parts": parts}
    )


def check_key(soak: Soak, s3: Any, key: str, strict: bool) -> None:
    """Read ``key`` and compare with what the clients were told (or might have been)."""
    if key not in soak.expected:
        return
    want = soak.expected[key]
    got: str | None
    try:
        got = sha(s3.get_object(Bucket="chaos", Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        got = None
    except Exception as exc:  # any failure to read is reported
        msg = f"read error {key}: {type(exc).__name__}: {str(exc)[:200]}"
        soak.problem(msg) if strict else soak.log(msg)
        return
    if got not in {want} | soak.uncertain.get(key, set()):
        soak.problem(f"{key}: read {got and got[:12]}, want {want and want[:12]}")


def s3_worker(soak: Soak, s3: Any, idx: int, seed: int) -> None:
    """One client's writes, deletes and reads of its own 40 keys."""
    rng = random.Random(seed * 100 + idx)
    keys = [f"w{idx}/k{i}" for i in range(40)]
    while not soak.stop.is_set():
        key, op = rng.choice(keys), rng.random()
        before = soak.expected.get(key)
        try:
            if op < 0.6:
                body = content(rng)
                soak.uncertain.setdefault(key, set()).add(sha(body))
                put(s3, key, body)
                soak.expected[key] = sha(body)
            elif op < 0.7:
                soak.uncertain.setdefault(key, set()).add(None)
                s3.delete_object(Bucket="chaos", Key=key)
                soak.expected[key] = None
            else:
                check_key(soak, s3, key, strict=False)
                continue
            soak.uncertain.pop(key, None)
        except Exception as exc:  # a failed op leaves the key uncertain
            soak.failed_ops += 1
            soak.uncertain.setdefault(key, set()).add(before)
            soak.log(f"s3 w{idx} {key}: {type(exc).__name__}: {str(exc)[:150]}")
            time.sleep(0.2)  # a pause before the next op while the fault lasts


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dfs-client", *args], env=env, capture_output=True, text=True, timeout=600
    )


def native_round(soak: Soak, env: dict[str, str], work: Path, n: int, rng: random.Random) -> None:
    """Upload a new folder of files into the bucket; read back an earlier one."""
    src = work / f"src{n}"
    src.mkdir(parents=True)
    files = {}
    for i in range(rng.randint(5, 40)):
        body = content(rng) if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 20000))
        (src / f"f{i}").write_bytes(body)
        files[f"f{i}"] = sha(body)
    done = cli(env, "upload", "-q", str(src), f"chaos/nat{n}/")
    if done.returncode == 0:
        soak.native.append((n, files))
    else:
        soak.failed_ops += 1
        soak.log(f"native upload nat{n} exit {done.returncode}: {done.stderr.strip()[-200:]}")
    shutil.rmtree(src)
    if soak.native and rng.random() < 0.5:
        check_native(soak, env, work, *rng.choice(soak.native), strict=False)


def check_native(
    soak: Soak, env: dict[str, str], work: Path, n: int, want: dict[str, str], strict: bool
) -> None:
    out = work / f"out{n}-{time.monotonic_ns()}"
    done = cli(env, "download", "-q", f"chaos/nat{n}/", f"{out}/")
    if done.returncode != 0:
        msg = f"native download nat{n} exit {done.returncode}: {done.stderr.strip()[-200:]}"
        soak.problem(msg) if strict else soak.log(msg)
    else:
        for name, digest in want.items():
            path = out / name
            if not path.exists() or sha(path.read_bytes()) != digest:
                soak.problem(f"nat{n}/{name}: missing or wrong after a download that exited 0")
    shutil.rmtree(out, ignore_errors=True)


def native_worker(soak: Soak, env: dict[str, str], work: Path, seed: int) -> None:
    rng = random.Random(seed * 7)
    n = 0
    while not soak.stop.is_set():
        n += 1
        native_round(soak, env, work, n, rng)


def damage(soak: Soak, base: Path, kind: str, rng: random.Random) -> None:
    """Delete or flip a byte of some of the victim node's chunk and pack files."""
    files = [p for p in (base / f"node{VICTIM}").rglob("*") if p.is_file()]
    files = [p for p in files if "quarantine" not in p.parts and not p.name.startswith(".")]
    for path in rng.sample(files, min(5 if kind == "delete" else 3, len(files))):
        try:  # the node may delete or rename a file meanwhile (GC, compaction)
            if kind == "delete":
                path.unlink()
                soak.log(f"FAULT delete {path.relative_to(base)}")
                continue
            with path.open("r+b") as f:
                at = rng.randrange(max(os.fstat(f.fileno()).st_size, 1))
                f.seek(at)
                byte = f.read(1) or b"\0"
                f.seek(at)
                f.write(bytes([byte[0] ^ 0x40]))
            soak.log(f"FAULT flip {path.relative_to(base)} at {at}")
        except FileNotFoundError:
            continue


def restart(proc: Any, pause: float) -> None:
    proc.signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(pause)  # down for a while, as a crashed process is
    proc.start()
    proc.wait_listening(30)


def one_fault(soak: Soak, c: LocalCluster, rng: random.Random, last_wipe: float) -> float:
    """Inject one fault; returns when the victim's disk was last wiped."""
    kind = rng.choice(["kill", "kill", "stop", "delete", "flip", "api", "s3", "wipe"])
    i = rng.randint(1, len(c.node_procs))
    if kind == "kill":
        soak.log(f"FAULT kill -9 node{i}")
        restart(c.node(i), rng.uniform(1, 4))
    elif kind == "stop":
        soak.log(f"FAULT SIGSTOP node{i}")
        c.node(i).signal(signal.SIGSTOP)
        time.sleep(rng.uniform(2, 7))  # hung for a while
        c.node(i).signal(signal.SIGCONT)
    elif kind in ("delete", "flip"):
        damage(soak, c.base, kind, rng)
    elif kind == "api" and c.api is not None:
        soak.log("FAULT kill -9 api")
        restart(c.api, rng.uniform(0.5, 3))
    elif kind == "s3" and c.s3_proc is not None:
        soak.log("FAULT kill -9 s3")
        restart(c.s3_proc, 0.0)
    elif kind == "wipe" and time.monotonic() - last_wipe > 60:
        soak.log(f"FAULT wipe node{VICTIM}")
        proc = c.node(VICTIM)
        proc.signal(signal.SIGKILL)
        proc.wait(10)
        shutil.rmtree(c.base / f"node{VICTIM}")
        (c.base / f"node{VICTIM}").mkdir()
        c.restart_node(VICTIM)
        return time.monotonic()
    return last_wipe


def faults(soak: Soak, c: LocalCluster, seed: int) -> None:
    rng = random.Random(seed * 13)
    last_wipe = 0.0
    while not soak.stop.wait(rng.uniform(5, 9)):
        try:
            last_wipe = one_fault(soak, c, rng, last_wipe)
        except Exception as exc:  # the soak goes on; reported at the end
            soak.problem(f"fault step failed: {type(exc).__name__}: {exc}")


def heal(soak: Soak, c: LocalCluster) -> None:
    """Every process running again, then wait (bounded) for two clean full repair passes."""
    for i in range(1, len(c.node_procs) + 1):
        if c.node(i).alive:
            c.node(i).signal(signal.SIGCONT)
        else:
            c.restart_node(i)
    for proc in (c.api, c.s3_proc):
        if proc is not None and not proc.alive:
            proc.start()
            proc.wait_listening(30)
    c.wait_live(len(c.node_procs), 60)
    deadline, clean, report = time.monotonic() + 300, 0, None
    while time.monotonic() < deadline and clean < 2:
        report = http_json(f"{c.api_url}/admin/repair", c.admin_token)["repair"]
        done = report and not report.get("running") and report.get("scope") == "full"
        if done and report["under_replicated"] == 0 and report["no_live_copy"] == 0:
            clean += 1
        time.sleep(2)  # a repair pass every DFS_REPAIR_INTERVAL=2 s
    soak.log("repair:", json.dumps(report)[:400])
    if clean < 2:
        soak.problem("repair never reported two clean full passes")


def s3_client(c: LocalCluster, values: dict[str, str]) -> Any:
    assert c.s3_proc is not None
    return boto3.client(
        "s3",
        endpoint_url=c.s3_proc.url,
        region_name="us-east-1",
        aws_access_key_id=values[S3_KEY_ID],
        aws_secret_access_key=values[S3_SECRET],
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=90),
    )


def soak_run(soak: Soak, c: LocalCluster, seconds: float, seed: int) -> None:
    values = ensure_user_token(c.base, c.api_url)
    env = {
        **os.environ,
        "DFS_API_URL": c.api_url,
        "DFS_TOKEN": values["DFS_TOKEN"],
        "HOME": str(c.base / "home"),
    }
    s3 = s3_client(c, values)
    s3.create_bucket(Bucket="chaos")
    if seed % 2:
        s3.put_bucket_versioning(Bucket="chaos", VersioningConfiguration={"Status": "Enabled"})
    work = c.base / "work"
    threads = [threading.Thread(target=s3_worker, args=(soak, s3, i, seed)) for i in range(3)]
    threads.append(threading.Thread(target=native_worker, args=(soak, env, work, seed)))
    threads.append(threading.Thread(target=faults, args=(soak, c, seed)))
    for t in threads:
        t.start()
    soak.stop.wait(seconds)
    soak.stop.set()
    for t in threads:
        t.join(600)
    soak.log(f"workload stopped ({soak.failed_ops} operations failed during faults); healing")
    heal(soak, c)
    for key in list(soak.expected):
        check_key(soak, s3, key, strict=True)
    for n, want in soak.native:
        check_native(soak, env, work, n, want, strict=True)
    live = sum(1 for v in soak.expected.values() if v)
    soak.log(f"checked {len(soak.expected)} S3 keys ({live} live), {len(soak.native)} folders")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=1, help="odd: a versioned bucket")
    ap.add_argument("--heartbeat-timeout", type=float, default=15.0)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="dfs-chaos-"))
    shutil.rmtree(base, ignore_errors=True)
    c = LocalCluster(
        base,
        nodes=4,
        replication_factor=2,
        s3=True,
        env=CLUSTER_ENV,
        heartbeat_interval=1.0,
        heartbeat_timeout=args.heartbeat_timeout,
    )
    soak = Soak()
    c.start()
    assert c.s3_proc is not None
    c.s3_proc.env["DFS_S3_PORT"] = c.s3_proc.url.rsplit(":", 1)[1]  # restarts keep the address
    try:
        soak_run(soak, c, args.seconds, args.seed)
    finally:
        soak.stop.set()
        c.stop()
    print(f"problems: {len(soak.problems)}")
    for p in soak.problems:
        print(" -", p)
    return 1 if soak.problems else 0


if __name__ == "__main__":
    sys.exit(main())
