"""Who the request acts as, and the check of a platform right (manage metamodel, install
packs, manage users, view audit) that admin routes make before doing anything.

Record permissions are not checked here: the read path and the write pipeline enforce them
(docs/security.md). A right is held by a role (identity/access.py): the built-in
administrator holds every right, other roles those their definitions name; a token also
needs its `admin` scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from slatecrm.metamodel.roles import Role

from ..identity.access import ADMINISTRATOR, roles_of
from ..identity.principal import ANONYMOUS, Principal
from ..records.errors import WriteRefused
from ..records.service import RecordsService
from .pinning import PRINCIPAL_KEY, records_of

__all__ = ["ADMINISTRATOR", "checked_right", "holds_right", "may", "principal_of", "require_right"]


#: The principal of a request no authentication saw: the same as web/pinning.py's, so that the
#: records and the rights of a request never disagree (authentication puts one in every
#: request's scope; one it did not see holds nothing).
UNAUTHENTICATED = ANONYMOUS


def principal_of(request: Request) -> Principal:
    """The request's principal (web/authentication.py put it in the scope)."""
    principal = request.scope.get(PRINCIPAL_KEY, UNAUTHENTICATED)
    assert isinstance(principal, Principal)
    return principal


def holds_right(principal: Principal, right: str, defined: Iterable[Role] = ()) -> bool:
    """Whether `principal` holds `right`: the system always; a user through one of its roles
    (`defined`: the revision's role definitions; the built-in administrator needs none) and,
    for a token, its `admin` scope."""
    if principal.unrestricted:
        return True
    if not principal.allows("admin"):
        return False
    return any(right in role.platform for role in roles_of(defined, principal.roles))


def may(request: Request, right: str) -> bool:
    """Whether the request's principal holds `right`: the same answer `require_right` gives,
    so a page offers a link (the header's admin links) only where following it is allowed."""
    principal = principal_of(request)
    return holds_right(principal, right, _defined_roles(records_of(request), principal))


def require_right(request: Request, right: str) -> Principal:
    """The principal, if it holds `right`; WriteRefused (403, naming the right) otherwise.
    Off the event loop only (a handler awaits `checked_right`), where the request's own
    revision is read: a role whose right was taken away a moment ago in another worker no
    longer gives it."""
    principal = principal_of(request)
    if not holds_right(principal, right, _defined_roles(records_of(request), principal, strict=True)):
        raise WriteRefused(f"this needs the right to {right.replace('_', ' ')}, which your roles do not give")
    return principal


async def checked_right(request: Request, right: str) -> Principal:
    """`require_right` for a handler on the event loop (one hop to the thread pool)."""
    return await run_in_threadpool(require_right, request, right)


def _defined_roles(records: RecordsService, principal: Principal, *, strict: bool = False) -> Iterable[Role]:
    """The revision's role definitions, when the principal's rights depend on them: from the
    request's pinned snapshot when it is pinned or may be (off the event loop), else from the
    revision this process loaded last (`may` on the event loop: which links a page offers).
    `strict`: never the last loaded one (`require_right`, which guards the action itself)."""
    if principal.unrestricted or not principal.allows("admin") or ADMINISTRATOR in principal.roles:
        return ()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return records.full_snapshot().metamodel.roles
    if strict:
        raise RuntimeError("require_right on the event loop: await checked_right(request, right)")
    runtime = getattr(records.holder, "_runtime", None)
    return () if runtime is None else runtime.metamodel.roles
