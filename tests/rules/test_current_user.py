"""`current_user.teams` and `current_user.manager`: checked, and selecting the same records in
Python and in SQL (SQLite and PostgreSQL) for generated users, records and conditions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from slatecrm.metamodel.rules import RuleContext, RuleError, check, compile_python, parse, pretty
from slatecrm.platform.identity.principal import Principal
from slatecrm.platform.records.rules import principal_context

from .strategies import NOW, company_values, deal_values
from .test_python_sql_agree import Bench
from .test_python_sql_agree import bench as bench  # the module's database fixture

CONDITIONS = (
    "quantity in current_user.teams",
    "quantity not in current_user.teams",
    "not (quantity in current_user.teams)",
    "company in current_user.teams or quantity = current_user.manager",
    "company.parent in current_user.teams",
    "quantity = current_user.manager",
    "quantity != current_user.manager",
    'kind in current_user.roles',
    'name not in current_user.roles',
    '"sales" in current_user.roles and quantity > 0',
    "current_user.manager is blank or quantity < current_user.manager",
)

users = st.builds(
    lambda teams, manager, roles: RuleContext(now=NOW, user_id=1, user_roles=tuple(roles),
                                              user_teams=tuple(teams), user_manager=manager),
    st.lists(st.integers(-3, 5), max_size=3, unique=True),
    st.one_of(st.none(), st.integers(-3, 5)),
    st.lists(st.sampled_from(["sales", "new", "renewal", "Acme"]), max_size=2, unique=True),
)


@settings(max_examples=40, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(companies=st.lists(company_values, min_size=0, max_size=3),
       deals=st.lists(deal_values, min_size=1, max_size=8), user=users)
def test_current_user_conditions_select_the_same_records(bench: Bench, companies: list[dict[str, object]],
                                                         deals: list[dict[str, object]],
                                                         user: RuleContext) -> None:
    bench.load(companies, deals)
    records, lookups = bench.python_view_and_context()
    context = RuleContext(now=NOW, user_id=1, user_roles=user.user_roles, user_teams=user.user_teams,
                          user_manager=user.user_manager, lookup=lookups.lookup)
    deal = bench.compiled["deal"]
    with bench.engine.connect() as conn:
        for text in CONDITIONS:
            checked = check(text, bench.metamodel, "deal")
            closure = compile_python(checked.typed)
            in_python = {r["id"] for r in records if closure(r, context) is True}
            where = bench.sql.condition(checked.typed, "deal")(context)
            in_sql = set(conn.execute(sa.select(deal.table.c.id).where(where)).scalars())
            assert in_python == in_sql, f"{text} for {user}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"


def test_a_user_in_teams_and_under_a_manager_is_what_the_rule_reads(bench: Bench) -> None:
    principal = Principal(user_id=7, name="Rep", via="session", roles=frozenset({"sales_rep"}),
                          teams=frozenset({2, 3}), manager_id=4)
    context = principal_context(principal, now=NOW)
    rule = compile_python(check("quantity in current_user.teams and owner != current_user.manager",
                                bench.metamodel, "deal").typed)
    assert rule({"quantity": 3, "owner": 7}, context) is True
    assert rule({"quantity": 1, "owner": 7}, context) is False
    assert rule({"quantity": 3, "owner": 4}, context) is False
    roles = compile_python(check('"sales_rep" in current_user.roles', bench.metamodel, "deal").typed)
    assert roles({}, context) is True


def test_in_a_list_value_prints_and_reads_back_alike() -> None:
    tree = parse("owner not in current_user.teams")
    assert parse(pretty(tree)) == tree


@pytest.mark.parametrize(("text", "message"), [
    ("current_user.team = 1",
     "current_user has no 'team' (did you mean 'teams'?); it has id, roles, teams, manager"),
    ("current_user.teams = 1", "cannot compare"),
    ('name in current_user.teams', "cannot look for a text in current_user.teams"),
    ("quantity in current_user.roles", "cannot look for a number in current_user.roles"),
    ('"hot" in tags', "'in' takes a list of values in parentheses"),
])
def test_wrong_uses_of_the_current_user_are_refused_with_a_reason(bench: Bench, text: str,
                                                                  message: str) -> None:
    with pytest.raises(RuleError) as error:
        check(text, bench.metamodel, "deal")
    assert message in str(error.value)
