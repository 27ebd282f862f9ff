"""What sign-in and sessions are configured with, read once per app: session lifetimes,
login throttling, and the clock (tests give one they move, so expiry and back-off are
tested without waiting)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..identity import throttle
from ..identity.sessions import Lifetimes

#: The session cookie's name.
SESSION_COOKIE = "slatecrm_session"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AuthSettings:
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    throttling: throttle.Policy = throttle.DEFAULT
    clock: Callable[[], dt.datetime] = utc_now

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> AuthSettings:
        return cls(lifetimes=Lifetimes.from_environment(env))
