"""Sample data's users: two teams, each a manager and reps reporting to them, holding the
default roles, able to sign in with the password sample-data prints once, and owning records."""

from __future__ import annotations

import json

import sqlalchemy as sa
from click.testing import CliRunner

from slatecrm.platform.cli import main
from slatecrm.platform.identity import users
from slatecrm.platform.identity.passwords import Passwords
from slatecrm.platform.storage import system


def test_sample_users_show_permissions_at_work(db_url: str) -> None:
    assert CliRunner().invoke(main, ["init", "--database", db_url]).exit_code == 0
    result = CliRunner().invoke(main, ["sample-data", "--database", db_url, "--count", "12", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    logins, password = report["logins"], report["password"]
    assert [(x["granted"], x["team"], x["manager"]) for x in logins] == [
        ("sales_manager", "North", True), ("sales_rep", "North", False), ("sales_rep", "North", False),
        ("sales_manager", "South", True), ("sales_rep", "South", False), ("sales_rep", "South", False)]
    # Each team stands in another region (the sales pack's user attribute): sharing rules
    # reading current_user.region have something to tell apart.
    assert [x["attributes"] for x in logins] == [{"region": "emea"}] * 3 + [{"region": "americas"}] * 3
    listed = json.loads(CliRunner().invoke(main, ["user", "list", "--database", db_url, "--json"]).output)
    assert {u["email"]: u["attributes"] for u in listed}[logins[3]["login"]] == {"region": "americas"}
    engine = sa.create_engine(db_url)
    try:
        rep = users.check_password(engine, logins[1]["login"], password,
                                   passwords=Passwords.from_environment())
        assert rep is not None and rep.manager_email == logins[0]["login"]
        with engine.connect() as conn:
            owners = set(conn.execute(sa.text("SELECT DISTINCT owner FROM x_lead")).scalars())
            ids = set(conn.execute(sa.select(system.users.c.id)).scalars())
        assert owners and owners <= ids
    finally:
        engine.dispose()
    text = CliRunner().invoke(main, ["sample-data", "--database", db_url, "--count", "1"])
    assert "Sample users" not in text.output  # made once: later runs reuse them
