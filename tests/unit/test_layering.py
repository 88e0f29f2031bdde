"""The layering rule, checked two ways: by importing, and by reading the imports.

- Every dfs module imports on its own in a fresh interpreter with ``-W error`` (aiohttp's
  test_circular_imports.py): no import cycles that only work in one order, no warnings.
- ``import dfs.client`` / ``dfs.transport.api_client`` load no boto3, click or aiohttp.web (click's
  test_imports.py): the library stays light for programs that embed it.
- Only the dfs/meta/dynamo/ package imports boto3/botocore, only dfs/client/cli.py and its parts
  (cli_*.py) import click, and the layer-0 modules import neither aiohttp nor any dfs module above layer 0 (read with ast).

The only subprocesses of the unit suite (four interpreters in all, see _FORK_IMPORTER).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dfs

PACKAGE_DIR = Path(dfs.__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
TIMEOUT = 240.0  # a bound for a loaded machine, not a speed check: idle, it takes a few seconds

L0 = {
    "dfs",
    "dfs.errors",
    "dfs.ids",
    "dfs.chunking",
    "dfs.placement",
    "dfs.durability_policy",
    "dfs.protocol",
    "dfs.config",
    "dfs.auth",
    "dfs.access_keys",
    "dfs.fsutil",
    "dfs.namespace_rules",
    "dfs.logs",
    "dfs.bounded",
    "dfs.malloc",
    "dfs.jsonio",
}
HEAVY = ("boto3", "botocore", "click", "aiohttp.web")
# dependency -> the modules, or packages (their modules and nothing else), that may import it;
# botocore also in the S3 gateway's signature module (SigV4 as S3 clients compute it)
ONLY_IMPORTED_BY = {
    "boto3": ("dfs.meta.dynamo",),
    "botocore": ("dfs.meta.dynamo", "dfs.s3.sigv4"),
    "click": ("dfs.client.cli",),
    "cryptography": ("dfs.access_keys",),
    "google_crc32c": ("dfs.s3.checksums",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}
MODULES = sorted(SOURCES)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTHONWARNINGS", None)
    return env


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
        check=False,
    )


# One interpreter per dfs module would cost ~0.3 s each (mostly aiohttp's import) on a small
# machine. Instead a parent imports the third-party packages dfs uses (the HEAVY ones too, and
# aiohttp.web: else each of the many children that need them imports them again, a third of
# this check's CPU) and forks one child per dfs module; each child starts with no dfs module loaded, so an
# import cycle that only works in one order still fails. Warnings are errors in both.
_FORK_IMPORTER = """
import importlib, json, os, sys, traceback
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
results = {}
for module in json.loads(sys.argv[2]):
    assert not [m for m in sys.modules if m == "dfs" or m.startswith("dfs.")]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(module)
            msg = ""
        except BaseException:
            msg = traceback.format_exc() or "failed"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    _, status = os.waitpid(pid, 0)
    results[module] = msg or ("" if status == 0 else f"child exited with status {status}")
print(json.dumps(results))
"""

_MODULES_AFTER = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def _third_party() -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    tops = {_top(n) for m in MODULES for n in imports_of(m)}
    return [*sorted(t for t in tops if t not in stdlib and t != "dfs"), "aiohttp.web"]


@pytest.fixture(scope="module")
def import_errors() -> dict[str, str]:
    """module -> "" if it imports alone, else the traceback."""
    proc = _run(_FORK_IMPORTER, json.dumps(_third_party()), json.dumps(MODULES))
    assert proc.returncode == 0, proc.stderr
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def modules_after_importing(*names: str) -> list[str]:
    proc = _run(_MODULES_AFTER, *names)
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout)
    return loaded


def test_modules_were_found() -> None:
    assert {"dfs", "dfs.errors", "dfs.ids", "dfs.chunking", "dfs.config"} <= set(MODULES)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone_without_warnings(module: str, import_errors: dict[str, str]) -> None:
    assert import_errors[module] == ""


def _heavy(loaded: list[str]) -> list[str]:
    return [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_client_library_loads_nothing_heavy() -> None:
    loaded = modules_after_importing("dfs.client")
    assert _heavy(loaded) == []
    if (
        "dfs.transport.api_client" not in loaded
    ):  # today dfs.client imports it; if not, check it alone
        loaded = modules_after_importing("dfs.transport.api_client")
        assert _heavy(loaded) == []


def test_cli_loads_no_http_client() -> None:
    # every dfs-client start imports dfs.client.cli: the library (aiohttp, ~0.1 s of CPU) is
    # imported by the commands that send requests, when they run (bench/startup.py)
    loaded = modules_after_importing("dfs.client.cli_main", "dfs.client.cli")
    assert [m for m in loaded if _top(m) == "aiohttp"] == []
    assert "dfs.client.library" not in loaded
    assert "click" in loaded  # the import did happen


def test_layer0_loads_no_aiohttp() -> None:
    loaded = modules_after_importing(*sorted(L0 & set(MODULES)))
    assert [m for m in loaded if _top(m) == "aiohttp"] == []
    assert _heavy(loaded) == []


# --- static checks -------------------------------------------------------------------------


def imports_of(module: str) -> set[str]:
    """Every module named by an import statement anywhere in ``module`` (lazy ones too)."""
    tree = ast.parse(SOURCES[module].read_text(encoding="utf-8"), str(SOURCES[module]))
    package = module if SOURCES[module].name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            names.add(target)
            # `from dfs import chunking` imports dfs.chunking
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _top(name: str) -> str:
    return name.partition(".")[0]


@pytest.mark.parametrize(("dependency", "owners"), sorted(ONLY_IMPORTED_BY.items()))
def test_dependency_imported_only_by_its_adapter(dependency: str, owners: tuple[str, ...]) -> None:
    assert set(owners) <= set(MODULES)  # a renamed adapter must not make this check vacuous
    users = sorted(m for m in MODULES if dependency in {_top(n) for n in imports_of(m)})
    # a package owner's modules (dfs.meta.dynamo.*) and a module owner's parts (dfs.client.cli_common,
    # cli_transfer: parts of the CLI) may import it too
    outside = [
        m for m in users if not any(m == o or m.startswith((o + ".", o + "_")) for o in owners)
    ]
    assert outside == [], users


def test_layer0_imports_only_layer0_and_no_aiohttp() -> None:
    problems = {}
    for module in sorted(L0 & set(MODULES)):
        names = imports_of(module)
        bad = sorted(
            n
            for n in names
            if _top(n) in {"aiohttp", "boto3", "botocore", "click"}
            or (_top(n) == "dfs" and n not in L0 and n.rpartition(".")[0] not in L0 - {"dfs"})
        )
        if bad:
            problems[module] = bad
    assert problems == {}


def test_imports_of_resolves_relative_and_from_imports() -> None:
    # a guard on the helper itself, so a parse bug cannot make the checks above vacuous
    names = imports_of("dfs.chunking")
    assert {"dfs.errors", "dfs.ids", "dfs.protocol", "hashlib"} <= names
