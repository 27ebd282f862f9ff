"""schemathesis against a live SlateCRM: the OpenAPI document is the contract.

For each database asked for, a new database with the default packs and sample data, a real
`slatecrm serve` on a free loopback port, and `schemathesis run` with every check against
its /api/v1/openapi.json. Every route needs a login, so the run signs in as an administrator
the way a script would: `slatecrm init --admin-email` makes one, `slatecrm token create
--json` gives it an API token with every scope, sent as `Authorization: Bearer …` (the hooks
keep the run from revoking that token). Then one line of figures per database, and a failure
(exit 1) on: any 5xx, any response that breaks its schema (body, status, content type,
headers), any 401 or 403 (the administrator's token holds every right and scope, so a
refusal means authentication or a right check is wrong), or any schema-valid request the
server refused for its form (`document` refusals, see fuzz_hooks.py). Schema-valid requests
refused for the data in the database (a reference to a record that does not exist) are
counted apart; the other checks' findings are printed and kept in the report.

    python scripts/fuzz.py --database sqlite --database postgresql --max-examples 20
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("SLATECRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
#: Findings that fail the run: the server answered outside its document.
FAILING = {"ServerError": "5xx", "JsonSchemaError": "response schema", "MalformedJson": "response schema",
           "ContentDeserializationError": "response schema", "UndefinedStatusCode": "undocumented status",
           "UndefinedContentType": "content type", "MalformedMediaType": "content type",
           "MissingContentType": "content type", "MissingHeaders": "response headers",
           "UnsupportedMethodResponse": "405", "AllowHeaderMismatch": "405"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ADMIN_EMAIL = "fuzz-admin@example.com"


def slatecrm(*args: str) -> str:
    """Run a command; its standard output."""
    done = subprocess.run([str(BIN / "slatecrm"), *args], check=True, stdout=subprocess.PIPE)
    return done.stdout.decode()


def admin_token(database: str) -> tuple[int, str]:
    """The id and secret of a new API token of the run's administrator (every scope)."""
    made = json.loads(slatecrm("token", "create", "--user", ADMIN_EMAIL, "--name", "fuzz", "--scope", "read",
                               "--scope", "write", "--scope", "admin", "--expires", "never", "--json",
                               "--database", database))
    return int(made["token"]["id"]), str(made["secret"])


def fetch_document(url: str, secret: str, into: Path) -> Path:
    """The OpenAPI document as the administrator gets it (it needs a login too), in a file."""
    asked = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(asked, timeout=30) as answer:
        into.write_bytes(answer.read())
    return into


def wait_until_up(url: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"slatecrm serve stopped with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {seconds:.0f} s")


class Database:
    """A new database of one kind, dropped afterwards."""

    def __init__(self, kind: str, folder: Path):
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{folder}/fuzz.db"
            self.name = ""
        else:
            self.name = f"slatecrm_fuzz_{uuid.uuid4().hex[:10]}"
            self.admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
            self.url = sa.make_url(POSTGRES).set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.name:
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


def run(kind: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    started = time.monotonic()
    database = Database(kind, folder)
    report, refusals = folder / f"{kind}.json", folder / f"{kind}-refusals.jsonl"
    try:
        slatecrm("init", "--admin-email", ADMIN_EMAIL, "--generate-password", "--database", database.url)
        slatecrm("sample-data", "--count", "20", "--database", database.url)
        token_id, secret = admin_token(database.url)
        port = free_port()
        server = subprocess.Popen([str(BIN / "slatecrm"), "serve", "--database", database.url,
                                   "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=open(folder / f"{kind}-server.log", "wb"))  # noqa: SIM115
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/health", server)
            document = fetch_document(f"{base}/api/v1/openapi.json", secret, folder / f"{kind}-openapi.json")
            command = [str(BIN / "schemathesis"), "run", str(document), "--url", base, "--checks", "all",
                       "--header", f"Authorization: Bearer {secret}",
                       "--phases", args.phases, "--max-time", str(args.max_time),
                       "--max-examples", str(args.max_examples), "--workers", "2", "--seed", str(args.seed),
                       "--generation-database", "none", "--no-color", "--suppress-health-check", "all",
                       "--report", "json", "--report-json-path", str(report)]
            env = {**os.environ, "SCHEMATHESIS_HOOKS": str(ROOT / "scripts" / "fuzz_hooks.py"),
                   "SLATECRM_FUZZ_REFUSALS": str(refusals), "SLATECRM_FUZZ_TOKEN_ID": str(token_id)}
            log = folder / f"{kind}-schemathesis.log"
            with open(log, "wb") as out:
                # In the run's folder: schemathesis keeps a cache where it runs.
                subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
                               cwd=folder)
        finally:
            server.terminate()
            server.wait(30)
    finally:
        database.drop()
    return summarise(kind, report, refusals, log, time.monotonic() - started)


def summarise(kind: str, report: Path, refusals: Path, log: Path, seconds: float) -> dict[str, Any]:
    if not report.exists() or not report.stat().st_size:
        print(log.read_text()[-5000:])
        raise SystemExit(f"{kind}: schemathesis wrote no report")
    data = json.loads(report.read_text())
    findings = {f["type"]: f["count"] for f in data["failures"]}
    refused = [json.loads(line) for line in refusals.read_text().splitlines()] if refusals.exists() else []
    kinds = Counter(r["kind"] for r in refused)
    failing = {FAILING[t]: n for t, n in findings.items() if t in FAILING}
    return {
        "database": kind, "operations": data["operations"]["tested"],
        "requests": data["test_cases"]["generated"],
        "server_errors": findings.get("ServerError", 0),
        "schema_violations": sum(n for t, n in findings.items() if FAILING.get(t) == "response schema"),
        "valid_refused": len(refused), "valid_refused_document": kinds["document"],
        "valid_refused_state": kinds["state"], "valid_refused_definition": kinds["definition"],
        "refused_signed_in": kinds["signed_in"],
        "failing": failing, "other_findings": {t: n for t, n in findings.items() if t not in FAILING},
        "errors": len(data["errors"]), "seconds": round(seconds, 1), "log": str(log),
        "refused_examples": [r for r in refused if r["kind"] in ("document", "signed_in")][:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--max-examples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-time", type=int, default=120,
                        help="seconds per database: the stateful phase can go on for long")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful",
                        help="schemathesis phases (coverage: every parameter's boundaries, the slow one)")
    parser.add_argument("--keep", type=Path, help="a folder to keep the reports and logs in")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="slatecrm-fuzz-"))
    folder.mkdir(parents=True, exist_ok=True)
    ok = True
    for kind in args.database or ["sqlite"]:
        result = run(kind, args, folder)
        print(json.dumps({k: v for k, v in result.items() if k != "refused_examples"}))
        for example in result["refused_examples"]:
            print("  refused, valid:", json.dumps(example)[:600])
        ok = ok and not result["failing"] and not result["valid_refused_document"] \
            and not result["refused_signed_in"] and not result["errors"]
    print(f"fuzz: {'PASS' if ok else 'FAIL'} (reports in {folder})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
