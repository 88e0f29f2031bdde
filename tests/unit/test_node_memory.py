"""Node and client keep freed chunk-sized buffers for the next body (``keep_freed_buffers``)."""

from __future__ import annotations

import ctypes

import pytest

from dfs import malloc


def test_glibc_takes_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    try:
        ctypes.CDLL(None).mallopt  # noqa: B018  # only glibc has it
    except AttributeError:
        pytest.skip("not glibc")
    assert malloc.keep_freed_buffers()


@pytest.mark.parametrize("name", ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"])
def test_an_operators_malloc_setting_wins(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "1048576")
    assert not malloc.keep_freed_buffers()
