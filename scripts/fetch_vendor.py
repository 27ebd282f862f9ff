"""Fetch the pinned browser scripts (htmx, Sortable.js, the Squire editor) from npm and check their sha256.

Run by `make install`. Each entry of slatecrm/platform/web/static/vendor.lock.json names an
npm package, its exact version, the file inside the package tarball and the sha256 that
file must have. `npm pack` downloads the tarball (npm checks the registry's integrity
hash); this script then checks our own pinned hash before placing the file, so a
republished or tampered package fails the install instead of reaching the browser.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "slatecrm" / "platform" / "web" / "static"
LOCK = STATIC / "vendor.lock.json"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(entry: dict[str, str], workdir: Path) -> bytes:
    spec = f"{entry['package']}@{entry['version']}"
    out = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(workdir)],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()
    tarball = workdir / out[-1]
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(entry["path"])
        if member is None:
            raise SystemExit(f"{spec}: {entry['path']} is not a file in the package")
        return member.read()


def main() -> int:
    lock = json.loads(LOCK.read_text())
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in lock["files"]:
            dest = STATIC / entry["dest"]
            if dest.exists() and digest(dest.read_bytes()) == entry["sha256"]:
                continue
            data = fetch(entry, Path(tmp))
            got = digest(data)
            if got != entry["sha256"]:
                failures.append(f"{entry['package']}@{entry['version']} {entry['path']}: sha256 {got}, "
                                f"the lock file says {entry['sha256']}")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            print(f"vendored {entry['package']}@{entry['version']} → {entry['dest']}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
