"""Shared fixtures: seeded random bytes and the free-port helper."""

from __future__ import annotations

import random

import pytest


def random_bytes(seed: int, n: int) -> bytes:
    """Deterministic pseudo-random bytes (restic's test.Random idea)."""
    return random.Random(seed).randbytes(n)


@pytest.fixture
def rng_bytes() -> object:
    return random_bytes
