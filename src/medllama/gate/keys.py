"""API keys: `mlk_<prefix>_<secret>`; the prefix finds the row, only a SHA-256 of the whole key is stored.

The secret carries 256 bits of randomness, so a fast hash is enough (no salt/stretching needed, as
for GitHub tokens or OpenDataHub MaaS keys) and a check stays well under a millisecond.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_SCHEME = "mlk"
_KEY = re.compile(r"^mlk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    prefix: str
    key: str  # the clear key: shown once, never stored
    key_hash: str


def new_key() -> NewKey:
    prefix = secrets.token_hex(6)  # 48 bits: a lookup handle, not a secret
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(prefix, key, hash_secret(key))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, None for anything else."""
    m = _KEY.match(key)
    return m.group(1) if m else None


def matches(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(key), key_hash)


def bearer(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer …` header ('' when the header is there but empty)."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
