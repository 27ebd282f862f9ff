"""How workflows run, from the environment (docs/workflows.md, "Settings"): retries and
their back-off, the lease, the batch, the clock (tests give their own)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ATTEMPTS = "SLATECRM_WORKFLOW_ATTEMPTS"
BACKOFF = "SLATECRM_WORKFLOW_BACKOFF"
BACKOFF_MAX = "SLATECRM_WORKFLOW_BACKOFF_MAX"
LEASE = "SLATECRM_WORKFLOW_LEASE"
KEEP_DAYS = "SLATECRM_WORKFLOW_KEEP_DAYS"


def _number(environ: Mapping[str, str], name: str, default: float, *, least: float,
            whole: bool = False) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a {'whole ' if whole else ''}number") from None
    if value < least:
        raise ValueError(f"{name}={text!r}: at least {least:g}")
    return value


@dataclass(frozen=True)
class Backoff:
    """Attempt n (from 1) that failed waits `base * factor**(n-1)` seconds, at most
    `max_seconds` each, before attempt n+1; after `attempts` attempts the job is dead.
    Nothing is clamped behind the administrator's back: the settings are what they say,
    and `total_seconds` is shown by `slatecrm worker --check`."""

    attempts: int = 8
    base_seconds: float = 30.0
    factor: float = 2.0
    max_seconds: float = 6 * 3600.0

    def delay(self, attempt: int) -> float:
        return min(self.base_seconds * self.factor ** max(attempt - 1, 0), self.max_seconds)

    def total_seconds(self) -> float:
        return sum(self.delay(n) for n in range(1, self.attempts))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Backoff:
        return cls(attempts=int(_number(environ, ATTEMPTS, 8, least=1, whole=True)),
                   base_seconds=_number(environ, BACKOFF, 30.0, least=0),
                   max_seconds=_number(environ, BACKOFF_MAX, 6 * 3600.0, least=0))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ExecutionSettings:
    backoff: Backoff = field(default_factory=Backoff)
    #: How long a claim is a worker's before another may take the job over.
    lease_seconds: float = 600.0
    #: Jobs claimed at once.
    batch: int = 50
    #: How long an idle worker waits before looking again.
    poll_seconds: float = 0.2
    clock: Callable[[], dt.datetime] = _utcnow
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: The plugins' workflow actions, by name (plugins/manager.py `workflow_actions`).
    actions: Mapping[str, Any] = field(default_factory=dict)
    #: How long finished jobs (done, skipped, cancelled) and runs are kept; dead jobs stay
    #: until replayed.
    keep_days: float = 30.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         **overrides: Any) -> ExecutionSettings:
        environ = dict(os.environ if environ is None else environ)
        made = cls(backoff=Backoff.from_environment(environ),
                   lease_seconds=_number(environ, LEASE, 600.0, least=1), environ=environ,
                   keep_days=_number(environ, KEEP_DAYS, 30.0, least=1))
        for key, value in overrides.items():
            setattr(made, key, value)
        return made

    def smtp(self) -> Any:
        from .mail import SmtpSettings

        return SmtpSettings.from_environment(self.environ)

    def plugin_actions(self) -> Mapping[str, Any]:
        return self.actions
