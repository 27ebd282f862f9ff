"""Uploading, reading and deleting stored files: the bytes in a backend, the facts in `slate_file`.

An upload is stored at once and belongs to nothing until a record's write attaches it
(records pipeline, files/attachments.py); only its uploader may attach it. A write that
removes a file from its record (or deletes the record) marks it released in its own
transaction; once that write has committed, `purge` deletes the bytes, the thumbnails and
the row. A write rolled back leaves the file as it was. Uploads nobody attached within
`UNATTACHED_HOURS` are deleted by later uploads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import sqlalchemy as sa
from PIL import Image, ImageOps

from ..records.errors import RecordError
from ..storage.system import files as file_table
from .backends import DEFAULT_MAX_UPLOAD, FileBackend
from .detect import MAX_IMAGE_PIXELS, detect

log = logging.getLogger(__name__)

#: Sizes (pixels, the longer side) a thumbnail is made in: the list cell and the record page.
THUMBNAIL_SIZES = (64, 240)
UNATTACHED_HOURS = 24
CHUNK = 64 * 1024
NAME_MAX = 255


class FileTooLarge(RecordError):
    status = 413


@dataclass(frozen=True)
class StoredFile:
    """One row of the file table."""

    id: int
    storage_key: str
    name: str
    size: int
    content_type: str
    sha256: str
    image: bool
    width: int | None
    height: int | None
    created_at: dt.datetime
    created_by: int | None
    entity: str | None
    record_id: int | None
    field: str | None
    released_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        """What the API says of an upload."""
        return {"id": self.id, "name": self.name, "size": self.size, "content_type": self.content_type,
                "sha256": self.sha256, "image": self.image, "width": self.width, "height": self.height,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
                "attached": self.entity is not None}


def clean_name(name: str | None) -> str:
    """An uploaded file's name without folders, control characters or a length past 255."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip().strip(".")
    if len(text) > NAME_MAX:
        stem, dot, suffix = text.rpartition(".")
        text = (stem[: NAME_MAX - len(suffix) - 1] + dot + suffix) if dot and len(suffix) < 16 \
            else text[:NAME_MAX]
    return text or "file"


class FileStore:
    """The stored files of one database, their bytes in `backend`."""

    def __init__(self, engine: sa.Engine, backend: FileBackend, max_upload: int = DEFAULT_MAX_UPLOAD):
        self.engine = engine
        self.backend = backend
        self.max_upload = max_upload

    # --- uploading ------------------------------------------------------------------------
    def upload(self, data: BinaryIO, name: str | None, *, user: int | None) -> StoredFile:
        """Store `data` (read to its end, refused past `max_upload` bytes) as a new, unattached
        file uploaded by `user`."""
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
            while chunk := data.read(CHUNK):
                size += len(chunk)
                if size > self.max_upload:
                    raise FileTooLarge(f"{clean_name(name)} is larger than {self.max_upload:,} bytes, the "
                                       "largest upload allowed (SLATECRM_MAX_UPLOAD_BYTES)")
                digest.update(chunk)
                spool.write(chunk)
            found = detect(spool)  # type: ignore[arg-type]
            key = f"{secrets.token_hex(1)}/{secrets.token_hex(16)}"
            spool.seek(0)
            self.backend.put(key, spool)  # type: ignore[arg-type]
        row: dict[str, Any] = {
            "storage_key": key, "name": clean_name(name), "size": size, "content_type": found.content_type,
            "sha256": digest.hexdigest(), "image": found.image, "width": found.width, "height": found.height,
            "created_at": dt.datetime.now(dt.UTC), "created_by": user}
        try:
            with self.engine.begin() as conn:
                file_id = conn.execute(file_table.insert().values(row).returning(file_table.c.id)
                                       ).scalar_one()
        except BaseException:
            self.backend.delete(key)
            raise
        self._forget_unattached()
        return StoredFile(id=file_id, entity=None, record_id=None, field=None, released_at=None, **row)

    def _forget_unattached(self) -> None:
        """Delete a few uploads nobody attached within UNATTACHED_HOURS."""
        before = dt.datetime.now(dt.UTC) - dt.timedelta(hours=UNATTACHED_HOURS)
        try:
            with self.engine.begin() as conn:
                stale = conn.execute(sa.select(file_table.c.id).where(
                    file_table.c.entity.is_(None), file_table.c.created_at < before).limit(20)
                ).scalars().all()
                if stale:
                    conn.execute(file_table.update().where(file_table.c.id.in_(stale),
                                                           file_table.c.entity.is_(None))
                                 .values(released_at=dt.datetime.now(dt.UTC)))
            if stale:
                self.purge(stale)
        except Exception:
            log.exception("forgetting unattached uploads failed")

    # --- reading ----------------------------------------------------------------------------
    def info(self, conn: sa.Connection, file_id: int) -> StoredFile | None:
        row = conn.execute(sa.select(file_table).where(file_table.c.id == file_id)).mappings().first()
        return None if row is None else StoredFile(**row)

    def rows(self, conn: sa.Connection, ids: Iterable[int]) -> dict[int, Mapping[str, Any]]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        found = conn.execute(sa.select(file_table).where(file_table.c.id.in_(wanted))).mappings().all()
        return {row["id"]: dict(row) for row in found}

    def open(self, stored: StoredFile) -> BinaryIO:
        return self.backend.open(stored.storage_key)

    def thumbnail(self, stored: StoredFile, size: int) -> bytes:
        """A PNG of an image at most `size` pixels wide and high (one of THUMBNAIL_SIZES),
        made with Pillow the first time and kept in the backend beside the file."""
        if size not in THUMBNAIL_SIZES or not stored.image:
            raise ValueError(f"no thumbnail of size {size}")
        key = thumbnail_key(stored.storage_key, size)
        try:
            with self.backend.open(key) as kept:
                return kept.read()
        except FileNotFoundError:
            pass
        with self.backend.open(stored.storage_key) as source:
            Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
            with Image.open(source) as image:
                shown = ImageOps.exif_transpose(image)
                shown.thumbnail((size, size))
                if shown.mode not in ("RGB", "RGBA"):
                    shown = shown.convert("RGBA")
                out = io.BytesIO()
                shown.save(out, "PNG")
        data = out.getvalue()
        self.backend.put(key, io.BytesIO(data))
        return data

    # --- deleting ------------------------------------------------------------------------------
    def purge(self, ids: Iterable[int]) -> int:
        """Delete the files of `ids` that a committed write released (bytes, thumbnails, row);
        the others (a rolled-back write's) are left alone. The number deleted."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self.engine.connect() as conn:
            released = conn.execute(sa.select(file_table.c.id, file_table.c.storage_key).where(
                file_table.c.id.in_(wanted), file_table.c.released_at.is_not(None))).all()
        done = 0
        for file_id, key in released:
            try:
                for size in THUMBNAIL_SIZES:
                    self.backend.delete(thumbnail_key(key, size))
                self.backend.delete(key)
                with self.engine.begin() as conn:
                    conn.execute(file_table.delete().where(file_table.c.id == file_id,
                                                           file_table.c.released_at.is_not(None)))
                done += 1
            except Exception:
                log.exception("deleting released file %s failed (it is deleted by a later purge)", file_id)
        return done

    def purge_released(self) -> int:
        """Every released file (those a failed purge left behind)."""
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(file_table.c.id).where(file_table.c.released_at.is_not(None))
                               ).scalars().all()
        return self.purge(ids)


def thumbnail_key(key: str, size: int) -> str:
    return f"thumbs/{key}-{size}.png"
