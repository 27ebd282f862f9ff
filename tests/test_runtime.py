"""One runtime per revision, swapped in when another process applies a new revision."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage.runtime import RuntimeHolder

from .packs import install, write_pack


def test_a_revision_applied_elsewhere_is_noticed_at_a_later_poll(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", {"vehicle": {"fields": {
        "plate": {"type": "text"}}}}))
    holder = RuntimeHolder(engine, registry, poll_interval=0.2)
    first = holder.current()
    assert first.revision == 1
    assert holder.current() is first  # built once per revision
    assert set(first.tables["vehicle"].c.keys()) >= {"id", "plate", "version"}
    upgrade = write_pack(tmp_path, "fleet", "1.1.0", {"vehicle": {"fields": {
        "plate": {"type": "text"}, "colour": {"type": "text"}}}})
    script = textwrap.dedent(f"""
        from slatecrm.platform import installer
        from slatecrm.platform.storage.engine import create_engine
        from slatecrm.plugins.manager import field_types, make_plugin_manager
        engine = create_engine({db_url!r})
        registry = field_types(make_plugin_manager())
        plan = installer.plan_install(engine, installer.load_packs([{str(upgrade)!r}], registry), registry)
        print(installer.install(engine, plan, author="other process"))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    deadline = time.monotonic() + 120  # a failure detector, not a timing assertion
    while holder.current().revision != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    second = holder.current()
    assert second.revision == 2
    assert "colour" in second.tables["vehicle"].c
    assert "colour" not in first.tables["vehicle"].c  # the old runtime is left as it was
