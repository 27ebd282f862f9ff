"""Passwords: the policy a new password must meet, and argon2id hashes of the ones that do.

Only the hash is ever stored (argon2-cffi's `PasswordHasher`, whose encoded hash carries its
own salt and parameters). A password is never logged, printed or put in an exception's
message: the reasons a password is refused describe it ("is too short") without quoting it.

Why argon2id with RFC 9106's low-memory profile (t=3, m=64 MiB, p=4): it is argon2-cffi's
default, the RFC's recommendation where 2 GiB per hash is not available, and memory-hard, so
a stolen table is slow to attack on GPUs. When the parameters change, a hash made with the
old ones is replaced at the next successful check (`Passwords.verify` returns the new hash).

The common-password list (`common-passwords.txt`, shipped as package data) is SecLists'
`Passwords/Common-Credentials/10-million-password-list-top-10000.txt` (Daniel Miessler and
contributors, MIT licence, see `common-passwords.LICENSE`): the 10,000 most frequent passwords
of Mark Burnett's ten-million-password corpus.
"""

from __future__ import annotations

import contextlib
import os
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

import argon2
from argon2 import PasswordHasher, profiles

from .errors import IdentityError

#: Characters a password must have at least (NIST SP 800-63B asks for 8 at least; 12 is
#: what a password manager's or a passphrase's user meets without thinking about it).
MIN_LENGTH = 12

#: Characters a password may have at most: argon2 takes any length, but hashing a megabyte
#: per attempt would make the login a way to load the server.
MAX_LENGTH = 1024

#: A password with fewer different characters than this ("aaaaaaaaaaaa", "abababababab")
#: is refused whatever its length.
MIN_DISTINCT = 5

#: The argon2 parameter sets `SLATECRM_PASSWORD_HASHING` may name (argon2-cffi's profiles).
#: CHEAPEST is for the tests only: its hashes take microseconds to compute, so to attack.
PROFILES: Mapping[str, argon2.Parameters] = {
    "RFC_9106_LOW_MEMORY": profiles.RFC_9106_LOW_MEMORY,
    "RFC_9106_HIGH_MEMORY": profiles.RFC_9106_HIGH_MEMORY,
    "CHEAPEST": profiles.CHEAPEST,
}
DEFAULT_PROFILE = "RFC_9106_LOW_MEMORY"

#: The settings an operator may change, and the variables that hold them.
MIN_LENGTH_VARIABLE = "SLATECRM_PASSWORD_MIN_LENGTH"
PROFILE_VARIABLE = "SLATECRM_PASSWORD_HASHING"

_EDGES = string.digits + string.punctuation + " "


class WeakPassword(IdentityError):
    """A password the policy refuses; the message says why, never what the password is."""


class SettingError(IdentityError):
    """A password setting in the environment that is not valid (named, with what it allows)."""


@cache
def common_passwords() -> frozenset[str]:
    """The common passwords, lower-cased (read once per process)."""
    text = resources.files(__package__).joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def normalised(password: str) -> str:
    """NFKC form, so the same password typed on two keyboards (composed or decomposed
    accents, full-width digits) hashes the same (NIST SP 800-63B, 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = MIN_LENGTH
    max_length: int = MAX_LENGTH

    def problem(self, password: str, *, context: Iterable[str] = ()) -> str | None:
        """Why the password is refused, or None. `context`: words the password must not be
        (the user's e-mail, its part before the @, the user's name)."""
        password = normalised(password)
        length = len(password)
        if length < self.min_length:
            return (f"the password is too short: {length} character(s), at least {self.min_length} "
                    "are needed")
        if length > self.max_length:
            return f"the password is too long: at most {self.max_length} characters"
        if len(set(password)) < MIN_DISTINCT:
            return f"the password uses fewer than {MIN_DISTINCT} different characters"
        lowered = password.lower()
        common = common_passwords()
        if lowered in common:
            return "the password is one of the 10,000 most common passwords"
        core = lowered.strip(_EDGES)
        if core != lowered and len(core) >= 4 and core in common:
            return "the password is a common password with digits or symbols added"
        if any(word and lowered == word.lower() for word in context):
            return "the password is the user's e-mail address or name"
        return None

    def check(self, password: str, *, context: Iterable[str] = ()) -> None:
        reason = self.problem(password, context=context)
        if reason is not None:
            raise WeakPassword(reason)


@dataclass(frozen=True)
class Verified:
    """The outcome of checking a password against a stored hash."""

    ok: bool
    #: a new hash to store in place of the old one (made with the current parameters), or None
    rehashed: str | None = None


class Passwords:
    """The policy and the hasher together: what `identity.users` needs to set and check
    passwords."""

    def __init__(self, policy: PasswordPolicy | None = None, parameters: argon2.Parameters | None = None):
        self.policy = policy or PasswordPolicy()
        self.hasher = PasswordHasher.from_parameters(parameters or PROFILES[DEFAULT_PROFILE])

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Passwords:
        """The settings from `SLATECRM_PASSWORD_MIN_LENGTH` (default 12, at least 8) and
        `SLATECRM_PASSWORD_HASHING` (a profile name of `PROFILES`, default RFC_9106_LOW_MEMORY).
        A bad value is an error naming the variable, never ignored."""
        environ = os.environ if environ is None else environ
        text = environ.get(MIN_LENGTH_VARIABLE, "").strip()
        min_length = MIN_LENGTH
        if text:
            if not text.isdigit() or not 8 <= int(text) <= MAX_LENGTH:
                raise SettingError(f"{MIN_LENGTH_VARIABLE}={text!r}: a whole number from 8 to {MAX_LENGTH}")
            min_length = int(text)
        profile = environ.get(PROFILE_VARIABLE, "").strip() or DEFAULT_PROFILE
        if profile not in PROFILES:
            raise SettingError(f"{PROFILE_VARIABLE}={profile!r}: one of {', '.join(PROFILES)}")
        return cls(PasswordPolicy(min_length=min_length), PROFILES[profile])

    def hash(self, password: str, *, context: Iterable[str] = ()) -> str:
        """The hash of a password the policy accepts (`WeakPassword` otherwise)."""
        self.policy.check(password, context=context)
        return self.hasher.hash(normalised(password))

    def verify(self, stored: str, password: str) -> Verified:
        """Check a password against its stored hash. The policy is not applied here: a
        password set under an older, laxer policy still lets its user in."""
        try:
            self.hasher.verify(stored, normalised(password))
        except argon2.exceptions.VerificationError:
            return Verified(False)
        except argon2.exceptions.InvalidHashError:
            return Verified(False)
        if self.hasher.check_needs_rehash(stored):
            return Verified(True, self.hasher.hash(normalised(password)))
        return Verified(True)

    def waste_time(self, password: str) -> None:
        """Spend what a check costs, for an unknown or password-less user, so the time an
        answer takes does not tell which e-mail addresses belong to a user."""
        with contextlib.suppress(argon2.exceptions.VerificationError):
            self.hasher.verify(_dummy_hash(self.hasher), normalised(password))


_DUMMIES: dict[tuple[int, int, int], str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in _DUMMIES:
        _DUMMIES[key] = hasher.hash("not a password anyone has: " + os.urandom(16).hex())
    return _DUMMIES[key]
