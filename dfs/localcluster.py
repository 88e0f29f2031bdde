"""A local cluster of real processes: one ``dfs-api`` and N ``dfs-node``s on loopback, and
optionally the S3 gateway ``dfs-s3`` (``scripts/cluster.sh`` starts it).

Used by ``scripts/cluster.sh`` (start / status / stop a long-running cluster), by the
end-to-end tests and by the benchmarks, so all three start processes the same way: the
console scripts beside the running interpreter, a base folder holding the SQLite metadata,
one data folder per node, one log per process and one pid file per process.

Layout of the base folder: ``meta.db``, ``api/``, ``node1/`` ... ``nodeN/``, ``logs/*.log``,
``pids/*.pid``, ``cluster.env`` (0600: the cluster and API secrets (the latter never given to
nodes), the admin token, and for the command line the API URL, a user token of tenant "demo"
and an S3 access key of it) and ``cluster.json`` (the command line's settings, so that
``status`` and a later ``start`` or ``restart`` use the same ports). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfs import protocol

_LISTEN_RE = re.compile(r"listening on (http://\S+)")


def console_script(name: str) -> str:
    """The path of a console script installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (pip install -e .)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, token: str | None = None, timeout: float = 5.0, body: Any = None) -> Any:
    """GET ``url`` (POST ``body`` as JSON if given) and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


ADMIN = "DFS_ADMIN_TOKEN"
API_SECRET = "DFS_API_SECRET"
SERVER_SECRETS = ("DFS_CLUSTER_SECRET", API_SECRET, ADMIN)
NODE_SECRETS = ("DFS_CLUSTER_SECRET",)
"""What a node receives: never the API's own secret (download URLs, page keys)."""
DEMO_TENANT = "demo"
S3_KEY_ID, S3_SECRET = "DFS_S3_ACCESS_KEY_ID", "DFS_S3_SECRET_ACCESS_KEY"  # in cluster.env


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip().removeprefix("export "): v.strip() for k, v in pairs}


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """``KEY=value`` lines, written whole (temp file, rename) with mode 0600."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in values.items()))
    os.replace(tmp, path)


def load_or_create_secrets(base: Path) -> dict[str, str]:
    """The values in ``base/cluster.env`` (mode 0600), created with a new cluster secret and
    admin token, so that a restarted cluster keeps them."""
    path = base / "cluster.env"
    if path.exists():
        return read_env_file(path)
    values = {
        "DFS_CLUSTER_SECRET": secrets.token_hex(32),
        API_SECRET: secrets.token_hex(32),
        "DFS_ADMIN_TOKEN": "dfs_" + secrets.token_urlsafe(32),
    }
    base.mkdir(parents=True, exist_ok=True)
    write_env_file(path, values)
    return values


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    pidfile: Path
    popen: subprocess.Popen[bytes] | None = None
    url: str = ""
    log_offset: int = 0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            out.close()
        self.pidfile.write_text(f"{self.popen.pid}\n")

    def wait_listening(self, timeout: float) -> str:
        """Read this run's 'listening on URL' line from the log."""

        def find() -> str | None:
            if self.popen is not None and self.popen.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                text = f.read().decode(errors="replace")
            matches = _LISTEN_RE.findall(text)
            return matches[-1] if matches else None

        self.url = str(wait_for(find, timeout, f"{self.name} to listen"))
        return self.url

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (graceful: drain, deregister), then SIGKILL if it does not exit in time."""
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        if self.wait(timeout) is None:
            self.signal(signal.SIGKILL)
            self.wait(timeout)
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(10.0)
        self.pidfile.unlink(missing_ok=True)

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class LocalCluster:
    """API + N nodes as subprocesses under ``base``; ports are free ones unless given."""

    base: Path
    nodes: int = 3
    replication_factor: int = 2
    api_port: int = 0
    node_ports: Sequence[int] = ()
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 4.0
    env: Mapping[str, str] = field(default_factory=dict)
    meta_url: str = ""
    nodes_via_api: bool = False
    """Nodes register through the API (DFS_API_URL only) on DynamoDB too; on SQLite they
    always do (``dfs.config.registers_through_api``)."""
    node_env: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    """Extra environment of node i (1-based), e.g. a small DFS_NODE_CAPACITY."""
    s3: bool = False
    """Also run the S3 gateway (``dfs-s3``, on ``s3_port``) once the nodes are live."""
    s3_port: int = 0
    api: Proc | None = None
    node_procs: list[Proc] = field(default_factory=list)
    s3_proc: Proc | None = None

    def __post_init__(self) -> None:
        self.base = self.base.resolve()
        # only the servers' secrets: cluster.env also holds the command line's DFS_TOKEN
        stored = load_or_create_secrets(self.base)
        self.secrets = {
            **{k: v for k, v in stored.items() if k in SERVER_SECRETS},
            **{k: v for k, v in self.env.items() if k in SERVER_SECRETS},
        }
        if not self.meta_url:
            self.meta_url = f"sqlite:///{self.base / 'meta.db'}"

    @property
    def admin_token(self) -> str:
        return self.secrets["DFS_ADMIN_TOKEN"]

    def _env(self, extra: Mapping[str, str], *, node: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not (node and k == API_SECRET)}
        env.update({k: v for k, v in self.secrets.items() if not node or k in NODE_SECRETS})
        env.update(
            {
                "DFS_META_URL": self.meta_url,
                "REPLICATION_FACTOR": str(self.replication_factor),
                "NODE_HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
                "NODE_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update({k: v for k, v in self.env.items() if not (node and k == API_SECRET)})
        env.update(extra)
        return env

    @property
    def api_url(self) -> str:
        if self.api is None or not self.api.url:
            raise RuntimeError("cluster not started")
        return self.api.url

    def _proc(self, name: str, script: str, env: dict[str, str]) -> Proc:
        log, pidfile = self.base / "logs" / f"{name}.log", self.base / "pids" / f"{name}.pid"
        return Proc(name=name, argv=[console_script(script)], env=env, log=log, pidfile=pidfile)

    def _node_proc(self, i: int) -> Proc:
        port = self.node_ports[i - 1] if len(self.node_ports) >= i else 0
        extra = {
            "NODE_ID": f"node{i}",
            "NODE_PORT": str(port),
            "DFS_DATA_DIR": str(self.base / f"node{i}"),
            "DFS_API_URL": self.api.url if self.api else "",
            **({"DFS_META_URL": ""} if self.nodes_via_api else {}),
            **self.node_env.get(i, {}),
        }
        return self._proc(f"node{i}", "dfs-node", self._env(extra, node=True))

    def _api_proc(self) -> Proc:
        extra = {"DFS_API_PORT": str(self.api_port), "DFS_DATA_DIR": str(self.base / "api")}
        return self._proc("api", "dfs-api", self._env(extra))

    def _s3_gateway_proc(self) -> Proc:
        extra = {"DFS_S3_PORT": str(self.s3_port), "DFS_DATA_DIR": str(self.base / "s3")}
        return self._proc("s3", "dfs-s3", self._env(extra))

    def start(self, timeout: float = 60.0, running: frozenset[str] = frozenset()) -> LocalCluster:
        """Start the API and the nodes, except the ones named in ``running`` (already
        running from an earlier start: the API then needs its fixed ``api_port``); wait until
        every node is live. On failure, stop what this call started."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.api = self._api_proc()
        started: list[Proc] = []
        try:
            if "api" in running:
                self.api.url = f"http://127.0.0.1:{self.api_port}"
            else:
                started.append(self.api)
                self.api.start()
                url = self.api.wait_listening(timeout)
                if not self.api_port:  # kept for its restarts: nodes and clients know the URL
                    self.api_port = int(url.rsplit(":", 1)[1])
                    self.api.env["DFS_API_PORT"] = str(self.api_port)
            self.node_procs = [self._node_proc(i) for i in range(1, self.nodes + 1)]
            fresh = [p for p in self.node_procs if p.name not in running]
            started += fresh
            for proc in fresh:
                proc.start()
            for proc in fresh:
                proc.wait_listening(timeout)
            self.wait_live(self.nodes, timeout)
            if self.s3:
                self.s3_proc = self._s3_gateway_proc()
                if "s3" in running:
                    self.s3_proc.url = f"http://127.0.0.1:{self.s3_port}"
                else:
                    started.append(self.s3_proc)
                    self.s3_proc.start()
                    self.s3_proc.wait_listening(timeout)
        except BaseException:
            for proc in reversed(started):
                with contextlib.suppress(OSError):
                    proc.stop()
            raise
        return self

    def node(self, i: int) -> Proc:
        """Node ``i`` (1-based)."""
        return self.node_procs[i - 1]

    def restart_node(self, i: int, timeout: float = 30.0) -> None:
        proc = self.node(i)
        if proc.alive:
            proc.stop()
        proc.start()
        proc.wait_listening(timeout)

    def live_nodes(self) -> list[str]:
        body = http_json(f"{self.api_url}/nodes", self.admin_token)
        return [n["node_id"] for n in body["nodes"] if n["live"]]

    def wait_live(self, count: int, timeout: float = 30.0) -> None:
        wait_for(lambda: len(self.live_nodes()) == count, timeout, f"{count} live nodes")

    def stop(self) -> None:
        gateway = [self.s3_proc] if self.s3_proc else []
        for proc in [*gateway, *self.node_procs, *([self.api] if self.api else [])]:
            with contextlib.suppress(OSError):
                proc.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- command line: scripts/cluster.sh --------------------------------------------------------


def _pids(base: Path) -> dict[str, int]:
    out = {}
    for f in sorted((base / "pids").glob("*.pid")):
        with contextlib.suppress(ValueError, OSError):
            out[f.stem] = int(f.read_text().strip())
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(pid: int) -> bool:
    """Whether ``pid`` is alive and a dfs console script: a stale pid file (after a reboot,
    a kill -9) may name an unrelated process by now. Without /proc: whether it is alive."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]
    except OSError:
        return not Path("/proc/self").exists()
    return any(Path(a.decode(errors="replace")).name.startswith("dfs-") for a in argv)


def _stop_pid(name: str, pid: int, timeout: float) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    print(f"stopped {name} (pid {pid})", file=sys.stderr)


def cmd_stop(base: Path, names: Sequence[str] = (), timeout: float = 15.0) -> int:
    """Stop ``names`` (every process if none are given)."""
    pids = {n: p for n, p in _pids(base).items() if not names or n in names}
    # nodes first, so they deregister while the API still answers
    for name in sorted(pids, key=lambda n: n == "api"):
        pid = pids[name]
        if _ours(pid):
            _stop_pid(name, pid, timeout)
        (base / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return 0


def cmd_status(base: Path, settings: Settings) -> int:
    """What runs and what the API sees; 0 only when every process runs and every node is
    live (a script or a person can rely on ``status && ...``)."""
    if not (base / "cluster.env").exists():
        print(f"no cluster under {base}: bash scripts/cluster.sh start")
        return 1
    pids = _pids(base)
    ok = True
    for name in settings.names():
        pid = pids.get(name)
        state = "running" if pid and _ours(pid) else "dead" if pid else "not started"
        ok = ok and state == "running"
        print(f"{name}\t{f'pid {pid}' if pid else '-'}\t{state}")
    try:
        body = http_json(f"{settings.api_url}/nodes", load_or_create_secrets(base)[ADMIN])
    except (OSError, ValueError) as exc:
        print(f"API {settings.api_url} not answering: {exc}")
        return 1
    print(
        f"API {settings.api_url}: {body['live']} live node(s), "
        f"replication factor {body['replication_factor']}"
    )
    for n in body["nodes"]:
        print(f"  {n['node_id']}\t{n['url']}\t{n['status']}\t{n['used_bytes']} bytes used")
    return 0 if ok and body["live"] >= settings.nodes else 1


def ensure_user_token(base: Path, api_url: str, tenant: str = DEMO_TENANT) -> dict[str, str]:
    """A user tenant and its token for the command line, kept in cluster.env as DFS_TOKEN
    beside DFS_API_URL (the admin token stays for administration only), and an S3 access key
    of that tenant for the gateway (``S3_KEY_ID``, ``S3_SECRET``)."""
    path = base / "cluster.env"
    values = read_env_file(path)
    if values.get("DFS_TOKEN") and values.get("DFS_API_URL") == api_url:
        if not values.get(S3_KEY_ID):
            made = http_json(f"{api_url}{protocol.ACCESS_KEYS}", values["DFS_TOKEN"], body={})
            values.update({S3_KEY_ID: made["access_key_id"], S3_SECRET: made["secret_access_key"]})
            write_env_file(path, values)
        return values
    admin_token = values[ADMIN]
    try:
        http_json(f"{api_url}{protocol.ADMIN_TENANTS}", admin_token, body={"tenant": tenant})
    except urllib.error.HTTPError as exc:
        if exc.code != 409:  # 409: the tenant exists already
            raise
    answer = http_json(
        f"{api_url}{protocol.ADMIN_TOKENS}",
        admin_token,
        body={"tenant": tenant, "role": "user", "label": "cluster.sh"},
    )
    values.update({"DFS_API_URL": api_url, "DFS_TOKEN": str(answer["token"]), S3_KEY_ID: ""})
    write_env_file(path, values)
    return ensure_user_token(base, api_url, tenant)


def cmd_env(base: Path) -> int:
    """The lines a shell evaluates to use the cluster as tenant "demo"."""
    path = base / "cluster.env"
    values = read_env_file(path) if path.exists() else {}
    if not values.get("DFS_TOKEN"):
        print(f"no cluster started under {base}: bash scripts/cluster.sh start", file=sys.stderr)
        return 1
    print(f"export DFS_API_URL={shlex.quote(values['DFS_API_URL'])}")
    print(f"export DFS_TOKEN={shlex.quote(values['DFS_TOKEN'])}  # tenant {DEMO_TENANT}")
    if values.get(S3_KEY_ID) and values.get("DFS_S3_URL"):
        # AWS_ENDPOINT_URL_S3, not AWS_ENDPOINT_URL: only S3 calls go to the gateway
        print(
            f"export AWS_ENDPOINT_URL_S3={shlex.quote(values['DFS_S3_URL'])}"
            f" AWS_ACCESS_KEY_ID={shlex.quote(values[S3_KEY_ID])}"
            f" AWS_SECRET_ACCESS_KEY={shlex.quote(values[S3_SECRET])}"
            f" AWS_DEFAULT_REGION=us-east-1  # dfs-s3, tenant {DEMO_TENANT}"
        )
    return 0


def cmd_start(base: Path, settings: Settings) -> int:
    """Start whatever is not running, then print the export lines (stdout) and the rest on
    stderr, so that ``eval "$(bash scripts/cluster.sh start)"`` works."""
    running = frozenset(n for n, pid in _pids(base).items() if _ours(pid))
    running -= _nodes_moved_off(base, settings, running)
    cluster = LocalCluster(
        base,
        nodes=settings.nodes,
        replication_factor=settings.replication_factor,
        api_port=settings.api_port,
        node_ports=[settings.first_node_port + i for i in range(settings.nodes)],
        heartbeat_interval=2.0,
        heartbeat_timeout=10.0,
        s3=True,
        s3_port=settings.s3_port,
    )
    cluster.start(running=running)
    settings.save(base)
    values = ensure_user_token(base, cluster.api_url)
    if values.get("DFS_S3_URL") != settings.s3_url:
        write_env_file(base / "cluster.env", {**values, "DFS_S3_URL": settings.s3_url})
    started = sorted(set(settings.names()) - running)
    say = functools.partial(print, file=sys.stderr)
    say(f"started: {', '.join(started) if started else 'nothing (all running)'}")
    say(f"API {cluster.api_url} with {settings.nodes} nodes; logs in {base / 'logs'}")
    say(f"tenant {DEMO_TENANT!r} and its token in {base / 'cluster.env'} (admin: {ADMIN})")
    say('use it: eval "$(bash scripts/cluster.sh env)"  or keep it as a profile:')
    say(f'  dfs-client config set local {cluster.api_url} --token "$DFS_TOKEN"')
    say(f"S3 gateway {settings.s3_url} (docs/S3.md): the env lines set AWS_ENDPOINT_URL_S3 and")
    say(f"  an access key of {DEMO_TENANT!r}; then boto3.client('s3') or `aws s3 ls` use it")
    return cmd_env(base)


def _nodes_moved_off(base: Path, settings: Settings, running: frozenset[str]) -> set[str]:
    """Running nodes stopped as the API moves to another port (``restart api --api-port P``):
    started again, they register through the new one, not the old one (and expire)."""
    if "api" in running or Settings.load(base, {}).api_port == settings.api_port:
        return set()
    nodes = {n for n in running if n.startswith("node")}
    if nodes:
        cmd_stop(base, sorted(nodes))
    return nodes


@dataclass
class Settings:
    """The command line's cluster shape, kept in ``cluster.json`` by ``start``."""

    nodes: int = 3
    replication_factor: int = 2
    api_port: int = 8080
    first_node_port: int = 9001
    s3_port: int = 9100

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def names(self) -> list[str]:
        return ["api", *(f"node{i}" for i in range(1, self.nodes + 1)), "s3"]

    @classmethod
    def load(cls, base: Path, overrides: Mapping[str, int | None]) -> Settings:
        path = base / "cluster.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        fields = {k: v for k, v in saved.items() if k in cls.__dataclass_fields__}
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)

    def save(self, base: Path) -> None:
        (base / "cluster.json").write_text(json.dumps(self.__dict__, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dfs.localcluster")
    p.add_argument("command", choices=["start", "stop", "status", "env", "restart"])
    p.add_argument("names", nargs="*", help="restart/stop: api, node1, node2, ..., s3")
    p.add_argument("--dir", default="dfs-data/local", help="base folder (default %(default)s)")
    p.add_argument("--nodes", type=int, default=None, help="default 3")
    p.add_argument("--replication-factor", type=int, default=None, help="default 2")
    p.add_argument("--api-port", type=int, default=None, help="default 8080")
    p.add_argument("--first-node-port", type=int, default=None, help="default 9001")
    p.add_argument("--s3-port", type=int, default=None, help="dfs-s3's port, default 9100")
    args = p.parse_args(argv)
    base = Path(args.dir).resolve()
    overrides = {k: getattr(args, k) for k in Settings.__dataclass_fields__}
    settings = Settings.load(base, overrides)
    if args.names and args.command not in ("stop", "restart"):
        p.error(f"{args.command} takes no process names")
    unknown = set(args.names) - set(settings.names())
    if unknown:
        p.error(f"no process {', '.join(sorted(unknown))} (known: {' '.join(settings.names())})")
    if args.command == "stop":
        return cmd_stop(base, args.names)
    if args.command == "status":
        return cmd_status(base, settings)
    if args.command == "env":
        return cmd_env(base)
    if args.command == "restart":
        cmd_stop(base, args.names or settings.names())
    return cmd_start(base, settings)


if __name__ == "__main__":
    raise SystemExit(main())
