"""How the SQLite store packs chunk ids and sha256s: 32 bytes exactly when the text is 64
lowercase hex digits, the text itself otherwise, and back to the same text either way."""

from __future__ import annotations

import hashlib

import pytest

from dfs.meta.sqlite_codec import pack_hex, unpack_hex

HEX = hashlib.sha256(b"a chunk").hexdigest()  # fixed: parameters name the tests (xdist)


def test_64_lowercase_hex_digits_are_packed_to_32_bytes_and_back() -> None:
    packed = pack_hex(HEX)
    assert packed == bytes.fromhex(HEX)
    assert unpack_hex(packed) == HEX
    assert pack_hex("0" * 64) == bytes(32)


@pytest.mark.parametrize(
    "text",
    [
        HEX.upper(),  # bytes.fromhex takes it; stored as given, so it reads back as given
        HEX[:62] + "A" + HEX[63],
        "ab " * 21 + "a",  # 64 characters that bytes.fromhex reads as 21 bytes
        " " + HEX[:63],
        HEX[:63] + "\n",
        "x" * 64,
        "\uff10" * 64,  # full-width digits
        HEX[:63],
        HEX + "0",
        "",
    ],
    ids=lambda text: repr(text)[:24],
)
def test_anything_else_is_kept_as_text(text: str) -> None:
    assert pack_hex(text) == text
    assert unpack_hex(pack_hex(text)) == text
