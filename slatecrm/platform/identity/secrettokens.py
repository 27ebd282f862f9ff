"""Random bearer secrets (session cookies, API tokens) and the one form they are stored in.

Only a SHA-256 of a secret is stored: a stolen table grants nothing. A plain hash, not argon2:
the secrets are 256 random bits, not guessable words, so a slow hash would add nothing but a
quarter of a second to every request (docs/security.md).
"""

from __future__ import annotations

import hashlib
import secrets

#: Random bytes in a token (256 bits).
TOKEN_BYTES = 32


def new_secret(prefix: str = "") -> str:
    """A new URL-safe random secret, `prefix` first (say what it is, so a leaked one is
    recognised by secret scanners)."""
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


def stored_hash(secret: str) -> str:
    """The form a secret is stored and looked up in."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
