"""requirements/runtime.lock (the lock scripts/release.sh ships with every release) pins and
hashes every runtime dependency, at the versions pyproject.toml pins; and the line release.sh
adds for dfs itself is the one the bootstrap scripts require. `scripts/test.sh` also runs
`release.sh --check` (the lock is current, the wheel builds), which needs the package index."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.conftest import REPO, SCRIPTS, bootstrap_text

pytestmark = pytest.mark.deploy

LOCK = REPO / "requirements" / "runtime.lock"


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in the lock."""
    text = LOCK.read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9._-]+)==(\S+)\s+(.*)$", line)
        assert m, f"not pinned: {line[:80]}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", m.group(3))
        assert hashes, f"not hashed: {m.group(1)}"
        out[m.group(1).lower().replace("_", "-")] = (m.group(2), hashes)
    return out


def test_every_runtime_dependency_is_locked_at_its_pin_with_hashes() -> None:
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = locked()
    for pin in pins:
        name, _, version = pin.partition("==")
        assert version, f"pyproject.toml pins {pin!r} loosely"
        assert lock[name.lower()][0] == version, name
    assert "dfs" not in lock  # release.sh adds dfs itself, with its wheel's hash


def test_the_dfs_line_release_sh_writes_is_the_one_bootstraps_require() -> None:
    release = (SCRIPTS / "release.sh").read_text()
    assert 'printf \'dfs==%s --hash=sha256:%s\\n\' "$version" "$digest"' in release
    for script in ("bootstrap_api.sh", "bootstrap_node.sh", "bootstrap_s3.sh"):
        text = bootstrap_text(script)
        assert 'grep -qx "dfs==${DFS_RELEASE_VERSION} --hash=sha256:[0-9a-f]\\{64\\}"' in text
        assert "--no-index" in text
        assert "--require-hashes" in text
