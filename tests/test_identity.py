"""Users and passwords (platform/identity), on SQLite and PostgreSQL: what an administrator
notices when adding, changing and disabling users, and what an older database becomes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import argon2
import pytest
import sqlalchemy as sa

from slatecrm.platform import installer
from slatecrm.platform.identity import users
from slatecrm.platform.identity.passwords import (
    PasswordPolicy,
    Passwords,
    SettingError,
    WeakPassword,
    common_passwords,
)
from slatecrm.platform.storage import system
from slatecrm.platform.storage.revisions import NotInitialised

#: Hashing parameters that cost microseconds: tests only (the default stays RFC 9106's).
CHEAP = Passwords(parameters=argon2.profiles.CHEAPEST)
GOOD = "violet staple orbit 42"


@pytest.fixture
def tables(engine: sa.Engine) -> sa.Engine:
    installer.create_system_tables(engine)
    return engine


def add(engine: sa.Engine, email: str, name: str = "Someone", **options: object) -> users.User:
    return users.add(engine, email, name, passwords=CHEAP, **options)  # type: ignore[arg-type]


def test_email_is_unique_whatever_its_case(tables: sa.Engine) -> None:
    made = add(tables, "Ann.Lee@Example.COM", "Ann Lee")
    assert made.email == "Ann.Lee@example.com"  # the domain lower-cased, the local part as typed
    with pytest.raises(users.DuplicateEmail, match=re.escape("'ann.lee@example.com' exists already")):
        add(tables, "ann.lee@EXAMPLE.com")
    assert users.get(tables, "ANN.LEE@example.com").id == made.id
    # The database refuses it too, not only the function's check.
    with pytest.raises(sa.exc.IntegrityError), tables.begin() as conn:
        conn.execute(system.users.insert().values(username="other", display_name="Other",
                                                  email="ANN.LEE@EXAMPLE.COM",
                                                  email_key="ann.lee@example.com",
                                                  created_at=dt.datetime.now(dt.UTC)))
    with pytest.raises(users.InvalidUser, match="'not-an-address' is not an e-mail address"):
        add(tables, "not-an-address")


WEAK = [  # (password, the reason given)
    ("short pw", "the password is too short: 8 character(s), at least 12 are needed"),
    ("1qaz2wsx3edc", "the password is one of the 10,000 most common passwords"),
    ("Password2024!", "the password is a common password with digits or symbols added"),
    ("abababababababab", "the password uses fewer than 5 different characters"),
    ("ann@example.com", "the password is the user's e-mail address or name"),
]


def test_weak_passwords_are_refused_with_the_reason(tables: sa.Engine) -> None:
    add(tables, "ann@example.com", "Ann")
    for password, reason in WEAK:
        with pytest.raises(WeakPassword) as refused:
            users.set_password(tables, "ann@example.com", password, passwords=CHEAP)
        assert str(refused.value) == reason
        assert not users.get(tables, "ann@example.com").has_password
        with pytest.raises(WeakPassword, match=re.escape(reason)):
            add(tables, "bob@example.com", "Bob", password=password.replace("ann@", "bob@"))
    assert [u.email for u in users.list_users(tables)] == ["ann@example.com"]
    users.set_password(tables, "ann@example.com", GOOD, passwords=CHEAP)
    assert users.get(tables, "ann@example.com").has_password


def test_policy_and_hashing_settings() -> None:
    assert "password" in common_passwords() and len(common_passwords()) > 9_900
    strict = Passwords.from_environment({"SLATECRM_PASSWORD_MIN_LENGTH": "30"})
    assert strict.policy.problem(GOOD) == "the password is too short: 22 character(s), at least 30 are needed"
    assert Passwords.from_environment({}).hasher.memory_cost == 65536  # RFC 9106 low memory: 64 MiB
    with pytest.raises(SettingError, match="SLATECRM_PASSWORD_MIN_LENGTH='4'"):
        Passwords.from_environment({"SLATECRM_PASSWORD_MIN_LENGTH": "4"})
    with pytest.raises(SettingError, match="SLATECRM_PASSWORD_HASHING='md5'"):
        Passwords.from_environment({"SLATECRM_PASSWORD_HASHING": "md5"})
    # The same password typed with a composed or a decomposed accent is the same password.
    stored = CHEAP.hash("crème brûlée au four")
    assert CHEAP.verify(stored, "cre\u0300me bru\u0302le\u0301e au four").ok
    assert PasswordPolicy(min_length=8).problem("trombone") == (
        "the password is one of the 10,000 most common passwords")


def test_passwords_are_argon2id_and_rehashed_when_parameters_change(tables: sa.Engine) -> None:
    add(tables, "ann@example.com", "Ann", password=GOOD)

    def stored() -> str:
        with tables.connect() as conn:
            return str(conn.execute(sa.select(system.users.c.password_hash)).scalar_one())

    first = stored()
    assert first.startswith("$argon2id$") and GOOD not in first
    assert users.check_password(tables, "ANN@example.com", GOOD, passwords=CHEAP) is not None
    assert stored() == first  # current parameters: kept
    assert users.check_password(tables, "ann@example.com", GOOD + "!", passwords=CHEAP) is None
    stronger = Passwords(parameters=dataclasses.replace(argon2.profiles.CHEAPEST, time_cost=2))
    assert users.check_password(tables, "ann@example.com", GOOD, passwords=stronger) is not None
    assert stored() != first and ",t=2," in stored()
    assert users.check_password(tables, "ann@example.com", GOOD, passwords=stronger) is not None
    users.disable(tables, "ann@example.com")
    assert users.check_password(tables, "ann@example.com", GOOD, passwords=stronger) is None
    assert users.check_password(tables, "nobody@example.com", GOOD, passwords=stronger) is None


def test_manager_cycles_are_refused(tables: sa.Engine) -> None:
    add(tables, "ceo@example.com")
    add(tables, "vp@example.com", manager="ceo@example.com")
    add(tables, "dev@example.com", manager="VP@example.com")
    assert users.get(tables, "dev@example.com").manager_email == "vp@example.com"
    circle = re.escape("dev@example.com cannot be the manager of ceo@example.com")
    with pytest.raises(users.InvalidUser, match=circle):
        users.update(tables, "ceo@example.com", manager="dev@example.com")
    with pytest.raises(users.InvalidUser, match="cannot be their own manager"):
        users.update(tables, "vp@example.com", manager="vp@example.com")
    assert users.get(tables, "ceo@example.com").manager_email is None
    with pytest.raises(users.UnknownUser, match=re.escape("no user with the e-mail 'boss@example.com'")):
        add(tables, "new@example.com", manager="boss@example.com")
    moved = users.update(tables, "dev@example.com", manager="ceo@example.com")
    assert moved.manager_email == "ceo@example.com"
    assert users.update(tables, "dev@example.com", manager=None).manager_email is None


def test_disabled_and_older_users_are_listed(tables: sa.Engine) -> None:
    with tables.begin() as conn:  # as sample data and older versions make users: no e-mail
        conn.execute(system.users.insert().values(username="mo", display_name="Mo Owner",
                                                  created_at=dt.datetime.now(dt.UTC)))
    add(tables, "ann@example.com", "Ann", time_zone="Europe/Paris", locale="fr-FR")
    users.disable(tables, "ann@example.com")
    listed = {u.name: u for u in users.list_users(tables)}
    ann, mo = listed["Ann"], listed["Mo Owner"]
    assert (ann.active, ann.time_zone, ann.locale) == (False, "Europe/Paris", "fr-FR")
    assert (mo.email, mo.active, mo.time_zone) == (None, True, "UTC")
    assert users.enable(tables, "ann@example.com").active
    with pytest.raises(users.UnknownUser):
        users.disable(tables, "nobody@example.com")
    with pytest.raises(users.InvalidUser, match="'Mars/Olympus' is not a time zone"):
        users.update(tables, "ann@example.com", time_zone="Mars/Olympus")
    with pytest.raises(users.InvalidUser, match="'français' is not a locale"):
        users.update(tables, "ann@example.com", locale="français")


def test_reset_clears_the_password_and_marks_the_time(tables: sa.Engine) -> None:
    made = add(tables, "ann@example.com", "Ann", password=GOOD)
    assert made.has_password and made.password_changed_at is not None
    cleared = users.reset(tables, "ann@example.com")
    assert not cleared.has_password
    assert cleared.password_changed_at is not None and cleared.password_changed_at >= made.password_changed_at
    assert users.check_password(tables, "ann@example.com", GOOD, passwords=CHEAP) is None
    assert users.administrators(tables) == []


OLD_USER_TABLE = sa.Table(  # slate_user as SlateCRM made it before identity
    "slate_user", sa.MetaData(),
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("username", sa.String, nullable=False, unique=True),
    sa.Column("display_name", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def test_an_older_database_is_upgraded(engine: sa.Engine) -> None:
    old = sa.MetaData()
    OLD_USER_TABLE.to_metadata(old)
    for table in system.system_metadata.sorted_tables:
        if table.name != "slate_user":
            table.to_metadata(old)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(old.tables["slate_user"].insert().values(
            username="mo", display_name="Mo Owner", created_at=dt.datetime.now(dt.UTC)))
    with pytest.raises(NotInitialised, match="run `slatecrm init` to bring its tables up to date"):
        users.list_users(engine)
    installer.create_system_tables(engine)  # what `slatecrm init` runs
    columns = {c["name"] for c in sa.inspect(engine).get_columns("slate_user")}
    assert set(system.USER_COLUMNS_ADDED) <= columns
    (mo,) = users.list_users(engine)
    assert (mo.name, mo.email, mo.active, mo.time_zone, mo.locale, mo.has_password) == (
        "Mo Owner", None, True, "UTC", "en", False)
    add(engine, "Ann@example.com", "Ann", manager=None)
    with pytest.raises(users.DuplicateEmail):
        add(engine, "ANN@example.com")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the index was made
        conn.execute(system.users.insert().values(username="x", display_name="X", email="ann@EXAMPLE.com",
                                                  email_key="ann@example.com",
                                                  created_at=dt.datetime.now(dt.UTC)))
    boss = users.update(engine, "ann@example.com", name="Ann Boss")
    with engine.begin() as conn:  # the manager column's foreign key sets NULL when its user goes
        conn.execute(system.users.update().where(system.users.c.id == mo.id).values(manager_id=boss.id))
        conn.execute(system.users.delete().where(system.users.c.id == boss.id))
        assert conn.execute(sa.select(system.users.c.manager_id)).scalar_one() is None
    with engine.begin() as conn:
        assert system.upgrade(conn) == []  # a second run does nothing
