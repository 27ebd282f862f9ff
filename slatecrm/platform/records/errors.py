"""What the records service refuses, in one structure that the API and the forms both render."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class RecordError(Exception):
    """Base of the refusals; `status` is the HTTP status the API answers with."""

    status = 400


class UnknownEntity(RecordError):
    status = 404

    def __init__(self, entity: str, suggestion: str = ""):
        super().__init__(f"there is no entity {entity!r}{suggestion}")
        self.entity = entity


class RecordNotFound(RecordError):
    status = 404

    def __init__(self, entity: str, record_id: object):
        super().__init__(f"there is no {entity} with id {record_id}")
        self.entity = entity
        self.record_id = record_id


class ValidationFailed(RecordError):
    """Every problem of a record at once, by field ("" for the record as a whole)."""

    status = 422
    #: What the message calls the errors of "" (the record as a whole); none for a request.
    whole = "record"

    def __init__(self, errors: Mapping[str, Sequence[str]]):
        self.errors = {k: list(v) for k, v in errors.items() if v}
        super().__init__("; ".join(f"{k or self.whole}: {' '.join(v)}" if k or self.whole else " ".join(v)
                                   for k, v in self.errors.items()))


class BadQuery(ValidationFailed):
    """A request the service cannot run (unknown sort field, unreadable filter value, a
    body that is not a JSON object); errors of "" are the request's as a whole."""

    status = 400
    whole = ""


class VersionConflict(RecordError):
    """The record changed since the version an update was based on: nothing was written."""

    status = 409

    def __init__(self, entity: str, record_id: int, based_on: int, current: int, changed: Sequence[str]):
        fields = ", ".join(changed) if changed else "no field (only its version)"
        super().__init__(f"{entity} {record_id} was changed by someone else since version {based_on} "
                         f"(it is at version {current} now; changed: {fields}); reload it and apply "
                         "your changes again")
        self.entity = entity
        self.record_id = record_id
        self.based_on = based_on
        self.current = current
        self.changed = list(changed)


class RecordInUse(RecordError):
    """A delete that other records forbid (their reference says on_delete: restrict)."""

    status = 409


class WriteRefused(RecordError):
    """An authorise hook of the write pipeline refused the write (nothing was read or written)."""

    status = 403


class BatchTooLarge(RecordError):
    """A bulk request over the app's batch bound (limits.py): refused before any record is
    read, so its cost stays bounded however many records were sent."""

    status = 413


class QueryTimeout(RecordError):
    """A statement ran past the app's statement timeout and the database stopped it
    (storage/engine.py): the request is refused, nothing it wrote is kept. 503: the
    request may be fine, the server will not spend more on it now."""

    status = 503
