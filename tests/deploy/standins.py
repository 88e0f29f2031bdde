"""What a bootstrap script meets on EC2, on loopback and in a throwaway directory, so that
tests/deploy/test_bootstrap_run.py can run the real scripts end to end without touching the
machine the tests run on:

- recording stand-ins on PATH for the commands that would change the machine (dnf, useradd,
  mkfs.xfs, mount, systemctl, chown, runuser; the CloudWatch agent's control command where its
  package puts it, in the root) or read its hardware (blkid, mountpoint, id);
  each appends its command line to ``calls.log``, and the few with state keep it in ``state/``
  (formatted, mounted, the user exists);
- an ``aws`` stand-in for the two AWS CLI commands the scripts run (``s3 sync`` and ``ssm
  get-parameter``), the CLI's semantics on boto3 against moto's server;
- a fake instance metadata service (IMDSv2: a PUT for a token, then GETs that must carry it);
- a release as scripts/release.sh lays it out, with a tiny stand-in ``dfs`` wheel whose
  console scripts record how they are called.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import secrets
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RECORDING = r"""#!/bin/bash
printf '%s\n' "$(basename "$0") $*" >>"{log}"
"""

STATEFUL = {
    "dnf": "",
    "useradd": 'touch "{state}/user"',
    "chown": "",
    "systemctl": "",
    "mkfs.xfs": 'touch "{state}/formatted"',
    "mount": 'touch "{state}/mounted"',
    "mountpoint": '[ -e "{state}/mounted" ]',
    "blkid": """[ -e "{state}/formatted" ] || exit 2
case "$*" in *TYPE*) echo xfs ;; *UUID*) echo {uuid} ;; esac""",
    "id": """[ "$*" = "-u" ] && { echo 0; exit 0; }
[ "$*" = "-u dfs" ] && [ -e "{state}/user" ] && { echo 990; exit 0; }
exit 1""",
    "runuser": """[ "$1 $2 $3" = "-u dfs --" ] || exit 2
shift 3
exec "$@"
""",
}

AWS = r'''#!{python}
"""aws s3 sync / aws ssm get-parameter, as the AWS CLI runs them, on boto3 (endpoint from
AWS_ENDPOINT_URL, as the CLI takes it)."""
import os, sys
from pathlib import Path
import boto3

with open(LOG, "a") as f:
    f.write("aws " + " ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
def opt(name):
    i = args.index(name)
    value = args[i + 1]
    del args[i : i + 2]
    return value
region = opt("--region")
if args[:2] == ["s3", "sync"]:
    args = args[2:]
    delete = "--delete" in args
    args = [a for a in args if a not in ("--delete", "--only-show-errors")]
    src, dst = args
    bucket, _, prefix = src.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", region_name=region)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    names = set()
    for key in keys:
        name = key[len(prefix):]
        names.add(name)
        s3.download_file(bucket, key, str(Path(dst) / name))
    if delete:
        for p in Path(dst).iterdir():
            if p.name not in names:
                p.unlink()
elif args[:2] == ["ssm", "get-parameter"]:
    args = args[2:]
    name = opt("--name")
    assert opt("--query") == "Parameter.Value" and opt("--output") == "text", args
    assert args == ["--with-decryption"], args
    ssm = boto3.client("ssm", region_name=region)
    print(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
else:
    sys.exit(f"aws stand-in: unsupported command {sys.argv[1:]}")
'''

STANDIN_MODULE = '''"""dfs console scripts stand-in: record the call next to the venv."""
import json, os, sys
from pathlib import Path

def main():
    with (Path(sys.prefix).parent / "standin-calls.jsonl").open("a") as f:
        f.write(json.dumps({"argv": [Path(sys.argv[0]).name, *sys.argv[1:]],
                            "meta_url": os.environ.get("DFS_META_URL")}) + "\\n")
'''


@dataclass
class Machine:
    """A throwaway root, the stand-ins' PATH and their call log."""

    root: Path
    bin: Path
    state: Path
    log: Path
    volume_id: str = "vol-0123456789abcdef0"
    uuid: str = "5e1f0c3a-0000-4000-8000-000000000001"

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def make_machine(base: Path) -> Machine:
    m = Machine(root=base / "root", bin=base / "bin", state=base / "state", log=base / "calls.log")
    for d in (m.root, m.bin, m.state):
        d.mkdir(parents=True)
    for name, body in STATEFUL.items():
        body = body.replace("{state}", str(m.state)).replace("{uuid}", m.uuid)
        text = RECORDING.replace("{log}", str(m.log)) + body + "\n"
        _executable(m.bin / name, text)
    base_python = getattr(sys, "_base_executable", sys.executable)
    _executable(m.bin / "python3.11", f'#!/bin/bash\nexec "{base_python}" "$@"\n')
    aws = AWS.replace("{python}", sys.executable).replace("LOG", repr(str(m.log)), 1)
    _executable(m.bin / "aws", aws)
    # the CloudWatch agent, as its package installs it
    agent_bin = m.root / "opt" / "aws" / "amazon-cloudwatch-agent" / "bin"
    agent_bin.mkdir(parents=True)
    _executable(agent_bin / "amazon-cloudwatch-agent-ctl", RECORDING.replace("{log}", str(m.log)))
    (m.root / "etc").mkdir()
    (m.root / "etc" / "fstab").write_text("")
    # the data volume as Nitro names it: a by-id link to an NVMe device
    by_id = m.root / "dev" / "disk" / "by-id"
    by_id.mkdir(parents=True)
    (m.root / "dev" / "nvme1n1").write_bytes(b"")
    serial = m.volume_id.replace("-", "", 1)
    (by_id / f"nvme-Amazon_Elastic_Block_Store_{serial}").symlink_to(m.root / "dev" / "nvme1n1")
    return m


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


# --- a release ---------------------------------------------------------------------------------


def standin_wheel(version: str, flavour: str = "") -> tuple[str, bytes]:
    """A minimal ``dfs`` wheel whose dfs-api, dfs-node and dfs-s3 record their calls (``flavour``
    changes its bytes: a different build of the same version)."""
    dist = f"dfs-{version}.dist-info"
    files = {
        "dfs_bootstrap_standin.py": STANDIN_MODULE + f"# {flavour}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: dfs\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\n"
        "dfs-api = dfs_bootstrap_standin:main\ndfs-node = dfs_bootstrap_standin:main\n"
        "dfs-s3 = dfs_bootstrap_standin:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return f"dfs-{version}-py3-none-any.whl", buf.getvalue()


def lock_for(version: str, wheel: bytes) -> bytes:
    """requirements.lock as scripts/release.sh writes its last line (the stand-in wheel has no
    dependencies, so that is all of it)."""
    return f"dfs=={version} --hash=sha256:{hashlib.sha256(wheel).hexdigest()}\n".encode()


# --- instance metadata -------------------------------------------------------------------------


@dataclass
class Imds:
    url: str
    metadata: dict[str, str]
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    untokened: list[str] = field(default_factory=list)  # GETs without the token


@contextmanager
def fake_imds(metadata: dict[str, str]) -> Iterator[Imds]:
    """IMDSv2 on 127.0.0.1 on a free port: PUT /latest/api/token (with a TTL header) returns
    a token; GET /latest/meta-data/KEY answers only with that token (401 otherwise)."""
    imds = Imds(url="", metadata=metadata)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def reply(self, code: int, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            ok = self.path == "/latest/api/token"
            ok = ok and bool(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"))
            self.reply(200, imds.token) if ok else self.reply(400, "")

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != imds.token:
                imds.untokened.append(self.path)
                self.reply(401, "")
                return
            key = self.path.removeprefix("/latest/meta-data/")
            value = imds.metadata.get(key)
            self.reply(404, "") if value is None else self.reply(200, value)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    imds.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield imds
    finally:
        server.shutdown()
        server.server_close()


def script_env(machine: Machine, imds: Imds, moto: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment cloud-init gives the script: stand-ins first on PATH, AWS credentials
    (the instance role's on EC2), and the test hooks (root prefix, IMDS endpoint)."""
    return {
        "PATH": f"{machine.bin}:/usr/bin:/bin",
        "HOME": str(machine.root),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": moto,
        "DFS_ROOT": str(machine.root),
        "DFS_IMDS_ENDPOINT": imds.url,
        **extra,
    }


def standin_calls(machine: Machine) -> list[dict[str, object]]:
    path = machine.root / "opt" / "dfs" / "standin-calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
