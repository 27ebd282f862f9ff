"""Installing packs and an admin's edits share one "merge, then plan" (platform/layers.py):
neither installer.py nor customisation.py imports the other."""

from __future__ import annotations

import ast
from pathlib import Path

import slatecrm.platform as platform

PLATFORM = Path(platform.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):  # imports inside functions too: that is how the cycle hid
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found |= {base} | {f"{base}.{a.name}" if node.module else f"{base}{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_installer_and_customisation_do_not_import_each_other() -> None:
    installer = imported_modules(PLATFORM / "installer.py")
    customisation = imported_modules(PLATFORM / "customisation.py")
    assert not {m for m in installer if m.endswith("customisation")}, installer
    assert not {m for m in customisation if m.endswith("installer")}, customisation
    assert ".layers" in installer and ".layers" in customisation
