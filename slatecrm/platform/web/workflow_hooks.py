"""Inbound webhooks: `POST /hooks/workflows/{name}` runs the active workflow `name` whose trigger
is `webhook` (docs/workflows.md, "Inbound webhooks").

No session, no token, no CSRF token: the request is signed (workflows/signing.py) with the
workflow's own secret (`workflow-inbound:<name>` in slate_secret, printed by `slatecrm
workflow secret <name>`). The body, a JSON object, gives the record's fields through the
trigger's `mapping` (field → JSON path); with the trigger's `match: <field>`, a delivery whose
mapped value of that field equals an existing record's updates that record instead of creating
one. The record is written through the write pipeline as the system (validation applies: a
refused record is 422 and nothing is kept), and a job of the workflow with trigger `webhook`
(the body in its event) is queued, in one transaction with the delivery's idempotency key:
a key seen for the workflow within 24 hours answers 200 `{"duplicate": true, ...}` and runs
nothing again, whether the first delivery is long done or committing at the same moment.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..records.errors import RecordError, ValidationFailed
from ..records.service import RecordsService
from ..storage import system
from ..workflows import outbox as workflow_outbox
from ..workflows.registry import CompiledWorkflow, active_workflows
from ..workflows.signing import IDEMPOTENCY_HEADER, TIMESTAMP_HEADER, SignatureRefused, sign, verify
from ..workflows.worker import install_outbox
from .jsonbody import parse
from .jsonresponse import JSONResponse
from .problems import problem

PATH = "/hooks/workflows/{name}"
#: The secret of workflow <name>'s inbound webhook (slate_secret).
SECRET_NAME = "workflow-inbound:{}"
#: The key of a signed request (its signature), kept besides its idempotency key.
SIGNED_KEY = "signed:{}"
#: How long a delivery's idempotency key is remembered.
KEPT = dt.timedelta(hours=24)
#: The longest idempotency key taken.
KEY_MAX = 255
#: The most of the body a job's event keeps (serialised JSON); a larger body is kept as the
#: first this many bytes of its text, with "body_truncated": true.
BODY_KEPT = 64 * 1024

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
#: The answer to every address that is not an active webhook workflow's: one body, so that
#: which names exist cannot be told from it.
NOT_HERE = "there is no active webhook workflow at this address"

deliveries = system.workflow_deliveries


class _Missing:
    pass


MISSING = _Missing()


def at_path(body: Any, path: str) -> Any:
    """The value at a JSON path (`$.a.b`, `$.items[0].x`) of `body`; MISSING when any step
    is not there."""
    value = body
    for name, index in _STEP.findall(path[1:]):
        if name:
            if not isinstance(value, dict) or name not in value:
                return MISSING
            value = value[name]
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                return MISSING
            value = value[position]
    return value


def match_field(compiled: CompiledWorkflow) -> str | None:
    """The trigger's `match` field: a delivery updates the record with its value, if any."""
    found = getattr(compiled.workflow.trigger, "match", None)
    return str(found) if found else None


def mapped_values(compiled: CompiledWorkflow, body: Mapping[str, Any]) -> dict[str, Any]:
    values = {}
    for field_name, path in compiled.workflow.trigger.mapping:
        value = at_path(body, path)
        if value is not MISSING:
            values[field_name] = value
    return values


def idempotency_key(compiled: CompiledWorkflow, request: Request, body: Mapping[str, Any]) -> str | None:
    """The header's key, else the value at the trigger's `idempotency_key` path; None: none."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None and compiled.workflow.trigger.idempotency_key:
        value = at_path(body, compiled.workflow.trigger.idempotency_key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            key = str(value)
    if key is None:
        return None
    key = key.strip()
    if not key:
        raise _Refusal(problem(400, "the idempotency key is empty"))
    if len(key) > KEY_MAX:
        raise _Refusal(problem(400, f"the idempotency key is {len(key)} characters long; at most {KEY_MAX}"))
    return key


class _Refusal(Exception):
    def __init__(self, response: Response):
        self.response = response


class _Duplicate(Exception):
    """Another delivery with the key committed first (a concurrent duplicate)."""


def event_body(raw: bytes, body: Mapping[str, Any]) -> dict[str, Any]:
    if len(raw) <= BODY_KEPT:
        return {"body": body}
    return {"body": raw[:BODY_KEPT].decode("utf-8", "ignore"), "body_truncated": True}


async def receive(request: Request) -> Response:
    name = request.path_params["name"]
    raw = await request.body()
    try:
        return await run_in_threadpool(_receive, request, name, raw)
    except _Refusal as refusal:
        return refusal.response


def _receive(request: Request, name: str, raw: bytes) -> Response:
    records: RecordsService = request.app.state.records
    snapshot = records.full_snapshot()
    compiled = active_workflows(snapshot).by_name.get(name)
    if compiled is None or compiled.workflow.trigger.kind != "webhook":
        return problem(404, NOT_HERE)
    secret = records.secrets.get(SECRET_NAME.format(name))
    try:
        verify(secret, request.headers, raw, now=int(time.time()))
    except SignatureRefused as refused:
        return problem(401, f"the signature was refused: {refused.reason}", reason=refused.kind)
    # The signed request itself, as a key: the Idempotency-Key header is not signed, so a
    # request captured and sent again (within the timestamp's tolerance) with another key
    # would otherwise count twice.
    signed = SIGNED_KEY.format(sign(secret, int(request.headers[TIMESTAMP_HEADER].strip()), raw))
    try:
        body = parse(raw, records.limits)
    except ValidationFailed as error:
        return problem(400, "; ".join(m for messages in error.errors.values() for m in messages))
    if not isinstance(body, dict):
        kind = "an empty body" if body is None else f"a JSON {type(body).__name__.replace('dict', 'object')}"
        return problem(400, f"the body must be a JSON object, not {kind}")
    key = idempotency_key(compiled, request, body)
    keys = [signed] if key is None else [signed, key]
    try:
        return _deliver(records, compiled, keys, body, raw)
    except _Duplicate:
        return _duplicate_answer(records.engine, name, keys)


def _deliver(records: RecordsService, compiled: CompiledWorkflow, keys: list[str], body: dict[str, Any],
             raw: bytes) -> Response:
    """The record, its job and the delivery's `keys` (the signed request's, the idempotency
    key if any) in one transaction; _Duplicate when a key was seen."""
    engine = records.engine
    outbox = install_outbox(records)
    now = dt.datetime.now(dt.UTC)
    values = mapped_values(compiled, body)
    entity = compiled.workflow.entity
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin(), \
            _forgetting_pending(conn):
        conn.execute(deliveries.delete().where(deliveries.c.received_at < now - KEPT))
        mine = sa.and_(deliveries.c.workflow == compiled.name, deliveries.c.key.in_(keys))
        if conn.execute(sa.select(deliveries.c.key).where(mine).limit(1)).first() is not None:
            raise _Duplicate
        # First, so that a concurrent delivery of a key waits here (PostgreSQL: on the
        # primary key) and then fails, before it writes anything.
        try:
            conn.execute(deliveries.insert(), [{"workflow": compiled.name, "key": k, "received_at": now}
                                               for k in keys])
        except sa.exc.IntegrityError:
            raise _Duplicate from None
        bound = records.bound(conn)
        existing = _matching(conn, records, compiled, values)
        try:
            if existing is None:
                record = bound.create(entity, values, user=None)
            else:
                record = bound.update(entity, existing[0], values, version=existing[1], user=None)
        except RecordError as error:
            raise _Refusal(_refused(error)) from None
        [job_id] = workflow_outbox.enqueue(conn, compiled, [record.id], "webhook", now,
                                           extra=event_body(raw, body))
        conn.execute(deliveries.update().where(mine).values(job_id=job_id, record_id=record.id))
        outbox.flush(conn)
    for call in bound.deferred or ():
        call()
    return JSONResponse({"job_id": job_id, "record_id": record.id, "created": existing is None},
                        status_code=202)


@contextmanager
def _forgetting_pending(conn: sa.Connection) -> Iterator[None]:
    """What the outbox kept on the connection for a transaction that is rolled back is
    forgotten with it (the pooled connection's `info` outlives the transaction)."""
    try:
        yield
    except BaseException:
        conn.info.pop(workflow_outbox.PENDING, None)
        raise


def _matching(conn: sa.Connection, records: RecordsService, compiled: CompiledWorkflow,
              values: Mapping[str, Any]) -> tuple[int, int] | None:
    """(id, version) of the record whose `match` field has the delivery's value, if any."""
    field_name = match_field(compiled)
    if field_name is None or values.get(field_name) is None:
        return None
    ce = records.full_snapshot().entities[compiled.workflow.entity]
    compiled_field = ce.fields.get(field_name)
    if compiled_field is None:
        return None
    try:
        columns = compiled_field.to_row(compiled_field.type.coerce(values[field_name], compiled_field.field))
    except Exception:  # a value the field refuses: the create says why (422)
        return None
    table = ce.table
    found = conn.execute(sa.select(table.c.id, table.c.version).where(
        *[table.c[column] == value if value is not None else table.c[column].is_(None)
          for column, value in columns.items()]).order_by(table.c.id).limit(1)).first()
    return None if found is None else (int(found.id), int(found.version))


def _refused(error: RecordError) -> Response:
    extra: dict[str, Any] = {"errors": error.errors} if isinstance(error, ValidationFailed) else {}
    return problem(error.status, f"the record was refused: {error}; nothing was kept", **extra)


def _duplicate_answer(engine: sa.Engine, workflow: str, keys: list[str]) -> Response:
    with engine.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.workflow == workflow,
                                                       deliveries.c.key.in_(keys))
                           .order_by(deliveries.c.job_id.is_(None), deliveries.c.key).limit(1)).first()
    return JSONResponse({"duplicate": True, "job_id": row.job_id if row else None,
                         "record_id": row.record_id if row else None}, status_code=200)


routes = [Route(PATH, receive, methods=["POST"])]
