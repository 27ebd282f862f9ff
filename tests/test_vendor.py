"""Third-party browser scripts: pinned in a lock file, checked by sha256, never committed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "slatecrm" / "platform" / "web" / "static"


def lock() -> list[dict[str, str]]:
    entries: list[dict[str, str]] = json.loads((STATIC / "vendor.lock.json").read_text())["files"]
    return entries


def fetcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_vendor", ROOT / "scripts" / "fetch_vendor.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installed_scripts_match_the_lock_and_are_not_committed() -> None:
    assert {e["package"] for e in lock()} == {"htmx.org", "sortablejs", "squire-rte"}
    assert next(e for e in lock() if e["package"] == "htmx.org")["version"].startswith("4.")
    for entry in lock():
        data = (STATIC / entry["dest"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["dest"]
    tracked = subprocess.run(["git", "ls-files", str(STATIC)], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert not [t for t in tracked if t.endswith(".min.js")]


def test_a_file_with_another_sha256_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    module = fetcher()
    (tmp_path / "vendor.lock.json").write_text(json.dumps({"files": [
        {"package": "htmx.org", "version": "4.0.1", "path": "package/dist/htmx.min.js",
         "dest": "vendor/htmx.min.js", "sha256": "0" * 64}]}))
    monkeypatch.setattr(module, "STATIC", tmp_path)
    monkeypatch.setattr(module, "LOCK", tmp_path / "vendor.lock.json")
    monkeypatch.setattr(module, "fetch", lambda entry, workdir: b"tampered")
    assert module.main() == 1
    assert "the lock file says 000" in capsys.readouterr().err
    assert not (tmp_path / "vendor" / "htmx.min.js").exists()
