"""Teams and role assignment from the command line (`slatecrm team …`, `user add --role`,
`user update --add-role/--remove-role/--add-team/--remove-team`), on SQLite and PostgreSQL,
and the last administrator, who cannot be disabled or lose the role."""

from __future__ import annotations

import json

from slatecrm.platform.identity import principals
from slatecrm.platform.storage.engine import create_engine

from .test_cli_users import PASSWORD, _cheap_hashes, run  # noqa: F401  (_cheap_hashes: autouse)


def ok(*args: str, database: str, input: str | None = None) -> str:
    result = run(*args, database=database, input=input)
    assert result.exit_code == 0, result.output
    return result.output


def listed(db_url: str) -> dict[str, dict[str, object]]:
    return {u["email"]: u for u in json.loads(ok("user", "list", "--json", database=db_url))}


def test_teams_and_roles_from_the_command_line(db_url: str) -> None:
    ok("init", "--admin-email", "boss@example.com", database=db_url, input=PASSWORD + "\n")
    ok("team", "add", "North", "--description", "the northern region", database=db_url)
    ok("team", "add", "South", database=db_url)
    twice = run("team", "add", "North", database=db_url)
    assert twice.exit_code == 1 and "a team named 'North' exists already" in twice.output

    ok("user", "add", "mia@example.com", "--name", "Mia", "--role", "sales_manager", "--team", "North",
       database=db_url)
    ok("user", "add", "rob@example.com", "--name", "Rob", "--manager", "mia@example.com",
       "--role", "sales_rep", "--team", "North", "--team", "South", database=db_url)
    typo = run("user", "add", "sam@example.com", "--name", "Sam", "--role", "sales_rpe", database=db_url)
    assert typo.exit_code == 1
    assert ("there is no role named 'sales_rpe' (did you mean 'sales_rep'?); roles: administrator, "
            "sales_manager, sales_rep") in typo.output
    assert "sam@example.com" not in listed(db_url)  # refused before the user was made
    no_team = run("user", "update", "rob@example.com", "--add-team", "Nort", database=db_url)
    assert no_team.exit_code == 1 and "there is no team 'Nort' (did you mean 'North'?)" in no_team.output

    people = listed(db_url)
    assert people["boss@example.com"]["roles"] == ["administrator"]
    assert people["rob@example.com"]["roles"] == ["sales_rep"]
    assert people["rob@example.com"]["teams"] == ["North", "South"]
    table = ok("user", "list", database=db_url)
    assert "North" in table  # the teams column (a narrow terminal folds the longer words)

    ok("user", "update", "rob@example.com", "--remove-team", "South", "--add-role", "sales_manager",
       "--remove-role", "sales_rep", database=db_url)
    rob = listed(db_url)["rob@example.com"]
    assert rob["roles"] == ["sales_manager"] and rob["teams"] == ["North"]
    assert json.loads(ok("team", "members", "North", "--json", database=db_url))["members"] == [
        "mia@example.com", "rob@example.com"]
    teams = {t["name"]: t for t in json.loads(ok("team", "list", "--json", database=db_url))}
    assert len(teams["North"]["members"]) == 2 and teams["South"]["members"] == []

    # What the permission checks read: the principal of Rob has the roles, teams and manager.
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rob_id = int(rob["id"])  # type: ignore[call-overload]
            principal = principals.load(conn, rob_id, "session")
        assert principal is not None and principal.roles == {"sales_manager"}
        assert len(principal.teams) == 1 and principal.manager_id == listed(db_url)["mia@example.com"]["id"]
    finally:
        engine.dispose()

    renamed = json.loads(ok("team", "update", "North", "--name", "Nordic", "--description", "the Nordics",
                            "--json", database=db_url))["team"]
    assert (renamed["name"], renamed["description"], renamed["members"]) == (
        "Nordic", "the Nordics", ["mia@example.com", "rob@example.com"])
    assert listed(db_url)["rob@example.com"]["teams"] == ["Nordic"]
    clash = run("team", "update", "Nordic", "--name", "South", database=db_url)
    assert clash.exit_code == 1 and "a team named 'South' exists already" in clash.output
    unknown = run("team", "update", "North", "--name", "Elsewhere", database=db_url)
    assert unknown.exit_code == 1 and "there is no team 'North'" in unknown.output
    assert "teams: Nordic, South; nothing was changed" in unknown.output

    ok("team", "remove", "Nordic", database=db_url)
    assert listed(db_url)["rob@example.com"]["teams"] == []


def test_the_last_administrator_stays(db_url: str) -> None:
    ok("init", "--admin-email", "boss@example.com", database=db_url, input=PASSWORD + "\n")
    again = ok("init", "--no-default-packs", "--admin-email", "other@example.com", database=db_url,
               input=PASSWORD + "\n")
    assert "An administrator exists already (boss@example.com)" in again
    for args in (("user", "disable", "boss@example.com"),
                 ("user", "update", "boss@example.com", "--remove-role", "administrator")):
        refused = run(*args, database=db_url)
        assert refused.exit_code == 1
        assert "boss@example.com is the last active administrator" in refused.output
    ok("user", "add", "deputy@example.com", "--name", "Deputy", "--role", "administrator", database=db_url)
    ok("user", "update", "boss@example.com", "--remove-role", "administrator", database=db_url)
    assert listed(db_url)["boss@example.com"]["roles"] == []
    refused = run("user", "disable", "deputy@example.com", database=db_url)
    assert refused.exit_code == 1 and "last active administrator" in refused.output
