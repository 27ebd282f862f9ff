"""Who the request acts as, and the check of a platform right (manage metamodel, install
packs, manage users, view audit) that admin routes make before doing anything.

Record permissions are not checked here: the read path and the write pipeline enforce them
(docs/security.md). A right is held by a role (identity/access.py); until roles from packs
are compiled, the built-in administrator role holds every right.
"""

from __future__ import annotations

from starlette.requests import Request

from ..identity.principal import ANONYMOUS, Principal
from ..records.errors import WriteRefused
from .pinning import PRINCIPAL_KEY

#: The role every installation has, holding every right (docs/security.md).
ADMINISTRATOR = "administrator"


def principal_of(request: Request) -> Principal:
    """The request's principal (web/authentication.py put it in the scope); anonymous if none."""
    principal = request.scope.get(PRINCIPAL_KEY, ANONYMOUS)
    assert isinstance(principal, Principal)
    return principal


def holds_right(principal: Principal, right: str) -> bool:
    if principal.unrestricted:
        return True
    if not principal.allows("admin"):
        return False
    return ADMINISTRATOR in principal.roles


def require_right(request: Request, right: str) -> Principal:
    """The principal, if it holds `right`; WriteRefused (403, naming the right) otherwise."""
    principal = principal_of(request)
    if not holds_right(principal, right):
        raise WriteRefused(f"this needs the right to {right.replace('_', ' ')}, which your roles do not give")
    return principal
