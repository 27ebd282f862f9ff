"""What the record-level filter costs (issue 12): the same reads by a user whose role reaches
only their own deals, and by one whose role adds a sharing rule through the company
reference, against the same reads by the same user with a role that reaches every deal, in
the same run. The baseline has every other part of permissions (the roles compiled, the
restricted snapshot, the object- and field-level checks): the difference is the filter
alone, which is what the issue's goal is about. What those other parts cost against the
system (no user at all) is reported beside, without a goal.

Goals: at most 10% more for own records (`owner` is indexed, with id last on PostgreSQL like
every other index), at most 25% more with a sharing rule through one reference. The deals are
spread over `USERS` owners first (the bench data set has none), then the statistics are
gathered again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from functools import partial

import sqlalchemy as sa

from slatecrm.metamodel.roles import EntityGrant, Role, SharingRule
from slatecrm.platform.identity.principal import SYSTEM, Principal
from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage import system
from slatecrm.platform.storage.runtime import RuntimeHolder, build_runtime

from . import dataset
from .common import Sizes, interleaved, median, ms
from .report import Figure

USERS = 200
OWN_GOAL = 1.10
SHARING_GOAL = 1.25
ROLES = (
    Role("all_deals", "Every deal", entities=(
        EntityGrant("deal", frozenset({"read", "update"}), "all"),
        EntityGrant("company", frozenset({"read"}), "all"))),
    Role("own_deals", "Own deals", entities=(
        EntityGrant("deal", frozenset({"read", "update"}), "own"),
        EntityGrant("company", frozenset({"read"}), "all"))),
    Role("shared_deals", "Own deals and their companies' deals", entities=(
        EntityGrant("deal", frozenset({"read", "update"}), "own",
                    sharing=(SharingRule("company.owner = current_user.id"),)),
        EntityGrant("company", frozenset({"read"}), "all"))),
)


def spread_owners(engine: sa.Engine, small_rows: int) -> None:
    """`USERS` users; deal x owned by user x % USERS + 1, company y by user y % USERS + 1."""
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(system.users)).scalar_one() < USERS:
            conn.execute(system.users.insert(), [
                {"username": f"bench-owner-{i}", "display_name": f"Owner {i}", "created_at": now}
                for i in range(USERS)])
        first = conn.execute(sa.select(sa.func.min(system.users.c.id))).scalar_one()
        if conn.dialect.name == "postgresql":  # a set-up step, not a request: no statement timeout
            conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
        for table in ("x_deal", "x_company"):
            conn.execute(sa.text(f"UPDATE {table} SET owner = id % {USERS} + {first}"))
    dataset.analyze(engine)


def with_roles(records: RecordsService) -> RecordsService:
    """A service whose revision has the bench roles (roles are not stored with revisions yet:
    the role packs will bring them), polling the head once an hour so they stay."""
    runtime = records.holder.current()
    holder = RuntimeHolder(records.engine, records.registry, poll_interval=3600)
    holder._runtime = build_runtime(runtime.revision, dataclasses.replace(runtime.metamodel, roles=ROLES),
                                    records.registry, records.engine.dialect.name)
    holder._checked = time.monotonic()
    return RecordsService(records.engine, holder, records.registry)


def run(engine: sa.Engine, records: RecordsService, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    spread_owners(engine, sizes.small_rows)
    service = with_roles(records)
    with engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(system.users.c.id))).scalar_one()
    pick = random.Random(12)
    owners = [first + pick.randrange(USERS) for _ in range(sizes.ops * 2)]
    # A deal of each owner (deal x is owned by x % USERS + first): get by id reads one they reach.
    deal_of = [(o - first) + USERS * pick.randrange(1, max(2, sizes.rows // USERS - 1)) for o in owners]
    deal_of = [d if d >= 1 else d + USERS for d in deal_of]
    figures = []

    def user(i: int, role: str) -> RecordsService:
        return service.pinned(Principal(user_id=owners[i], name="bench", via="session",
                                        roles=frozenset({role})))

    def call(i: int, role: str | None, what: str) -> object:
        """A request's service (pinned) for user i in `role`, or for the system (None)."""
        pinned = service.pinned(SYSTEM) if role is None else user(i, role)
        try:
            if what == "page":
                return pinned.page("deal", ListQuery(sort=("-id",)))
            return pinned.get("deal", deal_of[i])
        finally:
            pinned.close()

    whats = (("page", "list page of 50, sort -id, with its count"), ("get", "get by id"))
    for role, goal, label in (("own_deals", OWN_GOAL, "own records"),
                              ("shared_deals", SHARING_GOAL, "own records + sharing rule through company")):
        for what, title in whats:
            for i in range(sizes.ops):  # each user's first request of the revision builds their filter
                call(i, role, what)
            a, b = interleaved(partial(call, role=role, what=what),
                               partial(call, role="all_deals", what=what), sizes.ops)
            measured, baseline = ms(median(a)), ms(median(b))
            figures.append(Figure(
                f"record-level filter: {title}, {label} (records service)", db, sizes.rows,
                measured, baseline, "ms", f"≤ {goal:g}×", measured <= goal * baseline,
                f"median of {len(a)} calls each; a user (one of {USERS}) whose role reaches {label} "
                "vs the same user with a role reaching every deal (no record-level filter, the same "
                "object- and field-level checks), after each user's first request (which builds their "
                "filter, kept for the revision)"))
    for what, title in whats:  # what being a user costs at all, against the system: reported
        a, b = interleaved(partial(call, role="all_deals", what=what), partial(call, role=None, what=what),
                           sizes.ops)
        figures.append(Figure(
            f"a user's roles without a record-level filter: {title} (records service)", db, sizes.rows,
            ms(median(a)), ms(median(b)), "ms", "", None,
            f"median of {len(a)} calls each; a user whose role reaches every deal vs the system "
            "(no roles to check at all); reported without a goal"))
    return figures
