"""`slatecrm user …` and `slatecrm init --admin-email`, as an operator or a script uses them,
on SQLite and PostgreSQL. Passwords are hashed with argon2's cheapest parameters here
(`SLATECRM_PASSWORD_HASHING=CHEAPEST`, a test setting); the default is RFC 9106's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from slatecrm.platform.cli import main
from slatecrm.platform.identity import users
from slatecrm.platform.identity.passwords import PROFILE_VARIABLE
from slatecrm.platform.storage.engine import create_engine

PASSWORD = "violet staple orbit 42"


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_VARIABLE, "CHEAPEST")


def run(*args: str, database: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--database", database], input=input, catch_exceptions=False)


def listed(db_url: str) -> dict[str, dict[str, object]]:
    result = run("user", "list", "--json", database=db_url)
    assert result.exit_code == 0, result.output
    return {u["email"]: u for u in json.loads(result.output)}


def test_user_commands(db_url: str) -> None:
    assert run("init", "--no-default-packs", database=db_url).exit_code == 0
    added = run("user", "add", "Ann@Example.com", "--name", "Ann Lee", "--time-zone", "Europe/Paris",
                "--password-stdin", database=db_url, input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "Added Ann@example.com" in added.output and PASSWORD not in added.output
    again = run("user", "add", "ann@EXAMPLE.com", "--name", "Other", database=db_url)
    assert again.exit_code == 1
    assert "a user with the e-mail 'ann@example.com' exists already; nothing was changed" in again.output
    weak = run("user", "add", "bob@example.com", "--name", "Bob", "--password-stdin", database=db_url,
               input="qwerty123456\n")
    assert weak.exit_code == 1 and "one of the 10,000 most common passwords" in weak.output
    assert "qwerty123456" not in weak.output
    bob = run("user", "add", "bob@example.com", "--name", "Bob", "--manager", "ann@example.com",
              database=db_url)
    assert bob.exit_code == 0, bob.output
    circle = run("user", "update", "ann@example.com", "--manager", "bob@example.com", database=db_url)
    assert circle.exit_code == 1 and "the chain would be a circle" in circle.output
    assert run("user", "disable", "BOB@example.com", database=db_url).exit_code == 0
    table = run("user", "list", database=db_url)
    assert table.exit_code == 0 and "disabled" in table.output
    people = listed(db_url)
    ann, bob = people["Ann@example.com"], people["bob@example.com"]
    assert (bob["active"], bob["manager"]) == (False, "Ann@example.com")
    assert (ann["has_password"], ann["time_zone"]) == (True, "Europe/Paris")
    assert run("user", "enable", "bob@example.com", database=db_url).exit_code == 0
    # set-password asks twice at a hidden prompt; a different second answer asks again.
    prompted = run("user", "set-password", "bob@example.com", database=db_url,
                   input=f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    assert "Password set for bob@example.com" in prompted.output and PASSWORD not in prompted.output
    short = run("user", "set-password", "bob@example.com", "--password-stdin", database=db_url,
                input="too short\n")
    assert short.exit_code == 1 and "too short: 9 character(s), at least 12 are needed" in short.output
    unknown = run("user", "reset", "nobody@example.com", database=db_url)
    assert unknown.exit_code == 1
    assert "there is no user with the e-mail 'nobody@example.com'" in unknown.output
    assert run("user", "reset", "ann@example.com", database=db_url).exit_code == 0
    people = listed(db_url)
    assert [people[e]["has_password"] for e in ("Ann@example.com", "bob@example.com")] == [False, True]
    engine = create_engine(db_url)
    try:
        assert users.check_password(engine, "bob@example.com", PASSWORD) is not None
        assert users.check_password(engine, "ann@example.com", PASSWORD) is None
    finally:
        engine.dispose()


def test_init_makes_the_first_administrator_once(db_url: str) -> None:
    weak = run("init", "--no-default-packs", "--admin-email", "admin@example.com", database=db_url,
               input="password\n")
    assert weak.exit_code == 1 and "too short" in weak.output  # the tables are made, no administrator
    made = run("init", "--no-default-packs", "--admin-email", "admin@example.com", "--generate-password",
               "--json", database=db_url)
    assert made.exit_code == 0, made.output
    admin = json.loads(made.output)["admin"]
    assert admin["created"] and admin["email"] == "admin@example.com"
    engine = create_engine(db_url)
    try:
        assert users.check_password(engine, "admin@example.com", admin["password"]) is not None
    finally:
        engine.dispose()
    again = run("init", "--no-default-packs", "--admin-email", "admin@example.com", "--generate-password",
                database=db_url)
    assert again.exit_code == 0
    assert "An administrator exists already (admin@example.com): none was created" in again.output
    assert admin["password"] not in again.output and "password" not in again.output
    usage = run("init", "--admin-name", "Ann", database=db_url)
    assert usage.exit_code == 2
    assert "--admin-name and --generate-password go with --admin-email" in usage.output


def test_init_reads_the_administrators_password_from_standard_input(db_url: str) -> None:
    """The way a script or an installer makes the first administrator: a real process, its
    standard input a pipe."""
    command = [sys.executable, "-m", "slatecrm.platform.cli", "init", "--no-default-packs",
               "--database", db_url, "--admin-email", "Root@Example.com", "--admin-name", "Rita Root"]
    environment = {**os.environ, PROFILE_VARIABLE: "CHEAPEST"}
    done = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True, env=environment,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Administrator Root@example.com created" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    engine = create_engine(db_url)
    try:
        user = users.check_password(engine, "root@example.com", PASSWORD)
        assert user is not None and user.name == "Rita Root"
    finally:
        engine.dispose()
