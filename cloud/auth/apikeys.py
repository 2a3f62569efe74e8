"""The API key format: ``vm_<prefix>_<secret>``.

* ``prefix``: 10 characters ``[a-z0-9]``, stored and shown (it identifies the key in lists and
  logs, and is how a key is looked up);
* ``secret``: 40 characters ``[A-Za-z0-9]`` from :mod:`secrets` (about 238 bits), shown once.

Only SHA-256 of the whole key is stored. A slow password hash is not needed: the secret is
random and long, so it cannot be guessed from its hash, and a fast hash keeps every API call cheap.
Comparison is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

PREFIX_LENGTH = 10
SECRET_LENGTH = 40
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(rf"vm_([a-z0-9]{{{PREFIX_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: ``token`` goes to the caller once, the rest is stored."""

    prefix: str
    token: str
    secret_hash: str


def generate() -> NewKey:
    """A new random key."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    token = f"vm_{prefix}_{secret}"
    return NewKey(prefix=prefix, token=token, secret_hash=hash_key(token))


def hash_key(token: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse(token: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = _KEY.fullmatch(token)
    return match.group(1) if match else None


def looks_like_key(token: str) -> bool:
    """Whether a credential is meant as an API key (``vm_...``), well-formed or not."""
    return token.startswith("vm_")


def matches(token: str, secret_hash: str) -> bool:
    """Constant-time check of a key against its stored hash."""
    return hmac.compare_digest(hash_key(token), secret_hash)
