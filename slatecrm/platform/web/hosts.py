"""The Host allow-list: a request whose `Host` is not one this server answers to is refused
(400) before anything else reads it.

Why: a DNS-rebinding page (`evil.example` resolving to this server's address) makes the
victim's browser send same-origin requests with `Host: evil.example:<port>`; the Origin
matches that Host, so the cross-site guard alone would let them through, and every link the
app builds from the Host (the API's `next`) would point at the attacker. Setting
SLATECRM_ALLOWED_HOSTS: names or addresses, with or without a port, separated by commas or
spaces (`crm.example.com, 10.0.0.5:8000`). `slatecrm serve` defaults it to the address it
binds to plus localhost and 127.0.0.1, with its port; an app built without it answers to the
loopback names on any port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from .asgiproblem import send_problem

VARIABLE = "SLATECRM_ALLOWED_HOSTS"
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def _split(host: str) -> tuple[str, str | None]:
    """(name, port or None) of `name`, `name:port`, `[v6]` or `[v6]:port`, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1:]
        return name, rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, None


@dataclass(frozen=True)
class AllowedHosts:
    entries: tuple[tuple[str, str | None], ...]

    @classmethod
    def of(cls, hosts: Iterable[str]) -> AllowedHosts:
        entries = tuple(_split(h) for h in hosts if h.strip())
        for name, port in entries:
            if not name or (port is not None and not port.isdigit()):
                raise ValueError(f"{VARIABLE}: {name}:{port} is not a host name with an optional port")
        return cls(entries)

    @classmethod
    def parse(cls, text: str) -> AllowedHosts:
        return cls.of(text.replace(",", " ").split())

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> AllowedHosts:
        text = env.get(VARIABLE, "").strip()
        return cls.parse(text) if text else cls.of(LOOPBACK)

    def allows(self, host: str) -> bool:
        name, port = _split(host)
        if not name:
            return False
        return any(name == allowed and (allowed_port is None or allowed_port == port)
                   for allowed, allowed_port in self.entries)


def bound_to(host: str, port: int) -> list[str]:
    """The default list of a server listening on `host`:`port`."""
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    names = [bound] if bound not in ("0.0.0.0", "[::]") else []
    return [f"{name}:{port}" for name in dict.fromkeys([*names, *LOOPBACK])]


class HostAllowList:
    """Pure ASGI middleware: 400 for a Host not on the list (or none at all)."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            if not self.allowed.allows(host):
                await send_problem(send, 400, "this server does not answer to that host name "
                                              "(see SLATECRM_ALLOWED_HOSTS)")
                return
        await self.app(scope, receive, send)
