"""`X-Forwarded-For`, `-Proto` and `-Host`, honoured only from the reverse proxies named in
SLATECRM_TRUSTED_PROXIES (addresses or CIDR networks, commas or spaces between them).

From anyone else they are ignored: a client could otherwise claim any address (and escape
the per-address login throttle) or claim HTTPS. The fixed-up scope (client, scheme, Host)
is what everything after this reads: the Host allow-list, the cross-site guard, the Secure
flag of cookies, the audit log's addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

VARIABLE = "SLATECRM_TRUSTED_PROXIES"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> TrustedProxies:
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{VARIABLE}: {entry.strip()!r} is not an address or a network "
                                 "such as 10.0.0.0/8") from None
        return cls(tuple(networks))

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> TrustedProxies:
        return cls.of(env.get(VARIABLE, "").replace(",", " ").split())

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def _last(value: str) -> str:
    return value.split(",")[-1].strip()


class ProxyHeaders:
    """Pure ASGI middleware: from a trusted proxy, the client, scheme and Host it reports."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client and self.trusted.trusts(client[0]):
            scope = self._fixed(scope)
        await self.app(scope, receive, send)

    def _fixed(self, scope: Scope) -> Scope:
        headers: dict[bytes, str] = {k: v.decode("latin-1") for k, v in scope.get("headers", [])}
        scope = dict(scope)
        proto = _last(headers.get(b"x-forwarded-proto", "")).lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto
        forwarded_for = headers.get(b"x-forwarded-for", "")
        if forwarded_for:
            # Right to left: the first address that is not one of our proxies is the client.
            hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
            client = next((hop for hop in reversed(hops) if not self.trusted.trusts(hop)), hops[0])
            scope["client"] = (client, 0)
        forwarded_host = _last(headers.get(b"x-forwarded-host", ""))
        if forwarded_host:
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [
                (b"host", forwarded_host.encode("latin-1"))]
        return scope
