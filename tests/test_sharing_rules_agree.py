"""The record-level filter in SQL (what the read path puts on every statement) and its Python
form (what the write pipeline checks a record against, as it will be saved) select the same
records, for generated roles (scopes and sharing rules from a small grammar), users and
records, on SQLite and PostgreSQL. The users have a region (the sales pack's user attribute),
or none, or a value the definition no longer admits (read as null)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.roles import EntityGrant, Role, SharingRule
from slatecrm.platform.identity import users
from slatecrm.platform.identity.access import Access, RoleAccess, roles_of
from slatecrm.platform.identity.principal import Principal
from slatecrm.platform.records import keyset, listing
from slatecrm.platform.records import rules as rule_hooks
from slatecrm.platform.records.alternatives import alternatives_of, distinct_count, union_count
from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.records.service import RecordsService

from .defaults import make_app
from .pack_templates import PackTemplates

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
STEPS = ("call", "meet", "", "emea")
ACCOUNTS = ("Acme", "Shared Co", "apac")
#: A user's stored region: an option's key, none, or an option since removed.
REGIONS = ("emea", "americas", "apac", None, "antarctica")
DAYS = (dt.date(2026, 1, 1), dt.date(2026, 3, 1), dt.date(2026, 6, 1))


@pytest.fixture
def bench(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
          pack_templates: PackTemplates) -> Iterator[tuple[RecordsService, list[int], list[int]]]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    app = make_app(db_url)
    records: RecordsService = app.state.records
    people = [users.add(engine, f"u{i}@example.com", f"User {i}").id for i in range(4)]
    accounts = [records.create("account", {"name": name, "owner": people[i]}).id
                for i, name in enumerate(ACCOUNTS)]
    yield records, people, accounts
    app.state.engine.dispose()


def atoms(people: list[int]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(STEPS).map(lambda v: f"next_step = '{v}'"),
        st.sampled_from(STEPS).map(lambda v: f"next_step != '{v}'"),
        st.just("next_step is blank"),
        st.sampled_from(DAYS).map(lambda d: f"close_date > @{d.isoformat()}"),
        st.just("owner = current_user.id"),
        st.just("created_by = current_user.id"),
        st.sampled_from(ACCOUNTS).map(lambda v: f"account.name = '{v}'"),
        st.just("account.owner = current_user.id"),
        st.sampled_from(people).map(lambda p: f"owner = {p}"),
        st.just("next_step = current_user.region"),
        st.just("current_user.region != next_step"),
        st.just("account.name = current_user.region"),
        st.just("current_user.region is blank"),
        st.sampled_from(REGIONS[:3]).map(lambda v: f"current_user.region = '{v}'"),
        st.just("current_user.region in ('emea', 'apac')"),
    )


def conditions(people: list[int]) -> st.SearchStrategy[str]:
    return st.recursive(atoms(people), lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) and ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) or ({p[1]})"),
        inner.map(lambda c: f"not ({c})")), max_leaves=4)


def grants(people: list[int]) -> st.SearchStrategy[EntityGrant]:
    sharing = st.builds(SharingRule, conditions(people), st.sampled_from(("read", "edit")))
    return st.builds(lambda scope, update, rules: EntityGrant(
        "opportunity", frozenset({"read", "update"} if update else {"read"}), scope, tuple(rules)),
        st.sampled_from(("own", "team", "subordinates")), st.booleans(), st.lists(sharing, max_size=2))


def deals(people: list[int], accounts: list[int]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "owner": st.sampled_from([*people, None]),
        "created_by": st.sampled_from([*people, None]),
        "next_step": st.sampled_from([*STEPS, None]),
        "close_date": st.sampled_from([*DAYS, None]),
        "account": st.sampled_from(accounts),
    })


def store(records: RecordsService, ce: Any, rows: list[dict[str, Any]]) -> None:
    """The generated records, and only them, in the entity's table."""
    with records.engine.begin() as conn:
        conn.execute(ce.table.delete())
        for values in rows:
            conn.execute(ce.table.insert().values(
                name="deal", owner=values["owner"], created_by=values["created_by"],
                next_step=values["next_step"], close_date=values["close_date"], account=values["account"],
                created_at=NOW, updated_at=NOW, version=1))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_the_sql_filter_and_the_python_check_select_the_same_records(
        bench: tuple[RecordsService, list[int], list[int]], data: st.DataObject) -> None:
    records, people, accounts = bench
    roles = data.draw(st.lists(grants(people), min_size=1, max_size=2))
    defined = [Role(f"r{i}", f"Role {i}", entities=(g,)) for i, g in enumerate(roles)]
    me = data.draw(st.sampled_from(people))
    others = st.frozensets(st.sampled_from(people))
    region = data.draw(st.sampled_from(REGIONS))
    principal = Principal(user_id=me, name="me", via="session", roles=frozenset(r.name for r in defined),
                          team_members=data.draw(others) | {me}, subordinates=data.draw(others) - {me},
                          attributes=() if region is None else (("region", region),))
    full = records.full_snapshot()
    access = Access(principal, RoleAccess(roles_of(defined, principal.roles), full.rules), full.dialect)
    ce = full.entities["opportunity"]
    rows = data.draw(st.lists(deals(people, accounts), min_size=1, max_size=8))
    store(records, ce, rows)
    with records.engine.connect() as conn:
        stored = conn.execute(ce.select).mappings().all()
        context = rule_hooks.context_for(conn, full.entities, me, None, principal)
        for purpose in ("read", "update"):
            where = access.where("opportunity", ce.table, purpose)
            selected = set(conn.execute(sa.select(ce.table.c.id).where(
                sa.true() if where is None else where)).scalars())
            checked = set()
            for row in stored:
                record = {**{n: f.from_row(row) for n, f in ce.fields.items()},
                          **{k: row[k] for k in ("id", "owner", "created_by", "updated_by", "created_at",
                                                 "updated_at")}}
                if access.within("opportunity", record, purpose, context.lookup):
                    checked.add(row["id"])
            assert selected == checked, (purpose, [r.sharing for r in roles])


SORTS = (("-id",), ("id",), ("close_date",), ("-close_date",), ("next_step", "-close_date"), ("-updated_at",))


def _pages(conn: sa.Connection, ce: Any, where: Any, reach: Any, sort: tuple[str, ...], limit: int,
           filters: tuple[Any, ...]) -> tuple[list[int], int | None]:
    """Every page of the list in order, read with (`reach` given) or without the union of the
    read filter's alternatives, and the first page's count."""
    seen: list[int] = []
    after, count = None, None
    while True:
        query = ListQuery(sort=sort, limit=limit, after=after, filters=filters)
        built = listing.build(ce, query, [where], b"k" * 32, dialect=conn.dialect, reach=reach,
                              nulls_largest=keyset.nulls_largest_on(conn.dialect))
        rows = conn.execute(built.select).mappings().all()
        if after is None:
            count = built.counted(rows)
            if count is None:
                count = conn.execute(built.count).scalar_one()
        seen += [row["id"] for row in rows[:limit]]
        after = listing.next_cursor(rows, built, count)
        if after is None:
            return seen, count


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_a_page_read_as_the_union_of_the_filters_alternatives_is_the_same_page(
        bench: tuple[RecordsService, list[int], list[int]], data: st.DataObject) -> None:
    """records/alternatives.py: each alternative's first rows, merged, are the list's rows in
    the same order, page after page (keyset cursors), with the same count, for any sort."""
    records, people, accounts = bench
    grant = EntityGrant("opportunity", frozenset({"read"}), data.draw(st.sampled_from(("own", "team"))),
                        tuple(SharingRule(c) for c in data.draw(st.lists(conditions(people), min_size=1,
                                                                          max_size=2))))
    defined = [Role("r", "Role", entities=(grant,))]
    me = data.draw(st.sampled_from(people))
    principal = Principal(user_id=me, name="me", via="session", roles=frozenset({"r"}),
                          team_members=data.draw(st.frozensets(st.sampled_from(people))) | {me})
    full = records.full_snapshot()
    access = Access(principal, RoleAccess(roles_of(defined, principal.roles), full.rules), full.dialect)
    ce = full.entities["opportunity"]
    rows = data.draw(st.lists(deals(people, accounts), min_size=0, max_size=9))
    store(records, ce, rows)
    where = access.where("opportunity", ce.table)
    assert where is not None and alternatives_of(where), "the role reaches records in more than one way"
    sort = data.draw(st.sampled_from(SORTS))
    limit = data.draw(st.integers(1, 4))
    filters = data.draw(st.sampled_from(((), (listing.Filter("next_step", "ne", ("call",)),))))
    with records.engine.connect() as conn:
        plain = _pages(conn, ce, where, None, sort, limit, filters)
        union = _pages(conn, ce, where, where, sort, limit, filters)
    assert union == plain
    assert len(plain[0]) == len(set(plain[0])) == plain[1]


def test_a_union_count_stops_at_its_cap(bench: tuple[RecordsService, list[int], list[int]]) -> None:
    """One alternative alone past the cap answers the cap without counting the union; under
    it, the union's distinct rows (a row two alternatives select counts once)."""
    records, people, accounts = bench
    ce = records.full_snapshot().entities["opportunity"]
    table = ce.table
    with records.engine.begin() as conn:
        conn.execute(table.delete())
        for owner in (people[0], people[0], people[0], people[1]):
            conn.execute(table.insert().values(name="deal", owner=owner, account=accounts[0],
                                               created_at=NOW, updated_at=NOW, version=1))
    mine, theirs = table.c.owner == people[0], table.c.account == accounts[0]
    with records.engine.connect() as conn:
        def count(cap: int, *alternatives: Any) -> int:
            exact = sa.select(sa.func.count()).select_from(
                sa.select(table.c.id).where(sa.or_(*alternatives)).limit(cap).subquery())
            return int(conn.execute(union_count(table, [], alternatives, cap, exact)).scalar_one())
        assert count(10, mine, theirs) == 4  # the 3 of the first are among the 4 of the second
        assert count(4, mine, table.c.owner == people[1]) == 4
        assert count(3, mine, table.c.owner == people[1]) == 3  # the first alone has 3: capped
        assert int(conn.execute(distinct_count(table, [], [mine, theirs], 10)).scalar_one()) == 4
