"""S3 access keys: their ids and secrets, and the sealing that keeps secrets out of reach of
a metadata leak.

SigV4 is a MAC: the server needs each secret itself to check a signature, so secrets cannot
be stored hashed like API tokens. They are stored sealed with AES-256-GCM under a key derived
(HKDF-SHA256) from the API secret (``DFS_API_SECRET``), which lives in the services'
configuration, never in the metadata store. The key id and tenant are the sealed value's
associated data: a sealed secret moved to another key's record does not open.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dfs.errors import AuthError

KEY_ID_PREFIX = "DFSK"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SEAL_VERSION = "v1"
_HKDF_INFO = b"dfs s3 access key secrets v1"


def new_key_id() -> str:
    """A 20-character id like AWS's (upper case and digits), recognisably dfs's."""
    return KEY_ID_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def new_secret() -> str:
    """40 characters, as AWS secret access keys have (240 random bits)."""
    return secrets.token_urlsafe(30)


def is_key_id(text: str) -> bool:
    return len(text) == 20 and text.startswith(KEY_ID_PREFIX) and all(c in _ALPHABET for c in text)


def _aead(api_secret: bytes) -> AESGCM:
    if not api_secret:
        raise ValueError("sealing access keys needs the API secret")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return AESGCM(hkdf.derive(api_secret))


def _aad(key_id: str, tenant: str) -> bytes:
    return f"{key_id}\n{tenant}".encode()


def seal_secret(api_secret: bytes, key_id: str, tenant: str, secret: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = _aead(api_secret).encrypt(nonce, secret.encode(), _aad(key_id, tenant))
    return f"{_SEAL_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def open_secret(api_secret: bytes, key_id: str, tenant: str, sealed: str) -> str:
    """The secret; AuthError if it does not open (another API secret, a moved record)."""
    version, _, blob = sealed.partition(".")
    try:
        if version != _SEAL_VERSION:
            raise ValueError(version)
        raw = base64.urlsafe_b64decode(blob)
        plain = _aead(api_secret).decrypt(raw[:12], raw[12:], _aad(key_id, tenant))
    except (ValueError, InvalidTag):
        raise AuthError("this access key cannot be used (its secret does not open)") from None
    return plain.decode()
