"""SQLite's connection settings (storage/engine.py `sqlite_pragmas`): the page cache and
`synchronous` every connection of the app's engine gets, the last from
`SLATECRM_SQLITE_SYNCHRONOUS` (docs/api.md, "Limits"; docs/decisions.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slatecrm.platform.storage.engine import SQLITE_CACHE_KIB, create_engine

#: PRAGMA synchronous answers a number.
LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def settings(tmp_path: Path) -> dict[str, object]:
    engine = create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        with engine.connect() as conn:
            read = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("cache_size", "synchronous", "journal_mode", "foreign_keys")}
    finally:
        engine.dispose()
    read["synchronous"] = LEVELS[int(read["synchronous"])]  # type: ignore[call-overload]
    return read


def test_every_connection_gets_the_settings_and_commits_wait_for_the_disk_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATECRM_SQLITE_SYNCHRONOUS", raising=False)
    assert settings(tmp_path) == {"cache_size": -SQLITE_CACHE_KIB, "synchronous": "FULL",
                                  "journal_mode": "wal", "foreign_keys": 1}


@pytest.mark.parametrize("given, level", [("NORMAL", "NORMAL"), (" normal ", "NORMAL"), ("extra", "EXTRA"),
                                          ("", "FULL")])
def test_synchronous_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str,
                                  level: str) -> None:
    monkeypatch.setenv("SLATECRM_SQLITE_SYNCHRONOUS", given)
    assert settings(tmp_path)["synchronous"] == level


@pytest.mark.parametrize("given", ["OFF", "fast", "1"])
def test_a_synchronous_setting_sqlite_should_not_get_stops_the_engine_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("SLATECRM_SQLITE_SYNCHRONOUS", given)
    with pytest.raises(ValueError, match=f"SLATECRM_SQLITE_SYNCHRONOUS='{given}': expected one of "
                                         "FULL, NORMAL, EXTRA"):
        create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
