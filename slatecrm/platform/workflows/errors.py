"""The two ways a workflow's delivery step fails, as the job engine sees them.

`DeliveryFailed` says whether trying again later may succeed (`retryable`): the worker
retries those with backoff and gives up at once on the others. `TemplateFailed` is a
template that cannot be rendered for this record; rendering it again gives the same error,
so it is never retried.
"""

from __future__ import annotations


class DeliveryFailed(Exception):
    """An e-mail or webhook that was not delivered. `status` is the HTTP status or SMTP reply
    code when there was one; `retry_after` the seconds a receiver asked to wait (HTTP
    Retry-After), when it said."""

    def __init__(self, message: str, retryable: bool, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"DeliveryFailed({self.message!r}, retryable={self.retryable})"


class TemplateFailed(Exception):
    """A template that does not render: a syntax error, a refused (unsafe) access, a type
    error in an expression. The message says what and, when known, the template's line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
