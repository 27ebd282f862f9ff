"""Personal saved views: a user's named columns, filter and sort of one entity's list
(slate_saved_view), which an administrator may share with roles.

A saved view is platform data, not metamodel: saving one is no change to plan, and it never
widens what anyone reads (a list applies it through the read path, like the parameters it
stands for). Its definition is checked by running it once through that path when saved,
so a view that saves is one its owner could read with.

Only the owner renames or deletes a view; sharing needs the manage_metamodel right (the
web layer checks it) and names roles the revision defines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .identity.principal import Principal
from .records.errors import RecordNotFound, ValidationFailed
from .storage.system import saved_views

#: A saved view's name, as people type it (not a metamodel name).
NAME_MAX = 80
#: How a personal view is named in a list's `view` parameter: `saved-<id>` (no metamodel
#: view name has a "-", so the two never meet).
PREFIX = "saved-"


@dataclass(frozen=True)
class SavedView:
    id: int
    user_id: int
    entity: str
    name: str
    columns: tuple[str, ...]
    filter: str | None
    sort: tuple[str, ...]
    shared_roles: tuple[str, ...]

    @property
    def key(self) -> str:
        """What a list's `view` parameter says to apply this view."""
        return f"{PREFIX}{self.id}"

    def mine(self, principal: Principal) -> bool:
        return principal.user_id == self.user_id


def saved_id(key: str) -> int | None:
    """The id a `view` parameter names (`saved-<id>`), else None."""
    digits = key.removeprefix(PREFIX) if key.startswith(PREFIX) else ""
    return int(digits) if digits.isdigit() and len(digits) <= 18 else None


def definition(columns: Sequence[str], filter: str | None, sort: Sequence[str]) -> dict[str, Any]:
    return {"columns": list(columns), "filter": filter or None, "sort": list(sort)}


def _view(row: Any) -> SavedView:
    found: Mapping[str, Any] = row.definition or {}
    return SavedView(id=row.id, user_id=row.user_id, entity=row.entity, name=row.name,
                     columns=tuple(found.get("columns") or ()), filter=found.get("filter") or None,
                     sort=tuple(found.get("sort") or ()), shared_roles=tuple(row.shared_roles or ()))


def visible(conn: sa.Connection, entity: str, principal: Principal) -> list[SavedView]:
    """The views of `entity` the principal sees: its own, then those shared with one of its
    roles (the shared roles are a JSON list: filtered here, there are few views per entity)."""
    if principal.user_id is None:
        return []
    rows = conn.execute(sa.select(saved_views).where(saved_views.c.entity == entity)
                        .order_by(saved_views.c.name, saved_views.c.id)).all()
    found = [_view(r) for r in rows]
    own = [v for v in found if v.mine(principal)]
    shared = [v for v in found if not v.mine(principal) and set(v.shared_roles) & principal.roles]
    return [*own, *shared]


def get(conn: sa.Connection, entity: str, view_id: int, principal: Principal) -> SavedView:
    """A view the principal sees, else RecordNotFound (whether it exists is not told)."""
    found = next((v for v in visible(conn, entity, principal) if v.id == view_id), None)
    if found is None:
        raise RecordNotFound("saved view", view_id)
    return found


def _checked_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed({"name": ["give the view a name"]})
    if len(name) > NAME_MAX:
        raise ValidationFailed({"name": [f"is {len(name)} characters long; at most {NAME_MAX} are allowed"]})
    return name


def _taken(conn: sa.Connection, principal: Principal, entity: str, name: str, other_than: int | None) -> None:
    query = sa.select(saved_views.c.id).where(saved_views.c.user_id == principal.user_id,
                                             saved_views.c.entity == entity, saved_views.c.name == name)
    found = conn.execute(query).scalar()
    if found is not None and found != other_than:
        raise ValidationFailed({"name": [f"you have a view named {name!r} already; choose another name"]})


def save(engine: sa.Engine, principal: Principal, entity: str, name: str, columns: Sequence[str],
         filter: str | None, sort: Sequence[str], now: dt.datetime) -> SavedView:
    """A new personal view of the principal (the caller has checked columns, filter and sort
    by reading with them)."""
    if principal.user_id is None:
        raise ValidationFailed({"": ["sign in to save a view"]})
    name = _checked_name(name)
    with engine.begin() as conn:
        _taken(conn, principal, entity, name, None)
        inserted = conn.execute(saved_views.insert().values(
            user_id=principal.user_id, entity=entity, name=name,
            definition=definition(columns, filter, sort), shared_roles=[], created_at=now,
            updated_at=now)).inserted_primary_key
        assert inserted is not None
        return get(conn, entity, int(inserted[0]), principal)


def _own(conn: sa.Connection, entity: str, view_id: int, principal: Principal) -> SavedView:
    found = get(conn, entity, view_id, principal)
    if not found.mine(principal):
        raise ValidationFailed({"": [f"the view {found.name!r} was shared with you; only its owner may "
                                     "rename or delete it"]})
    return found


def rename(engine: sa.Engine, principal: Principal, entity: str, view_id: int, name: str,
           now: dt.datetime) -> SavedView:
    name = _checked_name(name)
    with engine.begin() as conn:
        _own(conn, entity, view_id, principal)
        _taken(conn, principal, entity, name, view_id)
        conn.execute(saved_views.update().where(saved_views.c.id == view_id)
                     .values(name=name, updated_at=now))
        return get(conn, entity, view_id, principal)


def delete(engine: sa.Engine, principal: Principal, entity: str, view_id: int) -> SavedView:
    with engine.begin() as conn:
        found = _own(conn, entity, view_id, principal)
        conn.execute(saved_views.delete().where(saved_views.c.id == view_id))
        return found


def share(engine: sa.Engine, principal: Principal, entity: str, view_id: int, roles: Iterable[str],
          defined: Iterable[str], now: dt.datetime) -> SavedView:
    """Share one of the principal's views with `roles` (replacing the roles it had; none: the
    owner's only again). `defined`: the role names the revision knows."""
    wanted = sorted(dict.fromkeys(r.strip() for r in roles if r.strip()))
    known = set(defined)
    unknown = [r for r in wanted if r not in known]
    if unknown:
        raise ValidationFailed({"roles": [f"there is no role {r!r}; roles: {', '.join(sorted(known))}"
                                          for r in unknown]})
    with engine.begin() as conn:
        _own(conn, entity, view_id, principal)
        conn.execute(saved_views.update().where(saved_views.c.id == view_id)
                     .values(shared_roles=wanted, updated_at=now))
        return get(conn, entity, view_id, principal)
