"""Where uploaded files' bytes are kept: a small protocol, and the local directory backend.

A backend stores opaque bytes by key; it knows nothing of records, names or types (the
`slate_file` table does). Keys are made by the platform (random, lower-case hex and `/`),
never from a name a client sent.

The backend comes from `SLATECRM_FILE_STORAGE`: a folder (`/var/lib/slatecrm/files` or
`file:///var/lib/slatecrm/files`) for the local backend; any other URL (`s3://bucket/prefix`)
is offered to the plugins' `slatecrm_file_storage` hook, and refused when none answers.
Unset, files go to a folder beside a SQLite database file (`crm.db` → `crm.db-files/`), or
to `./slatecrm-files` for a database server.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

STORAGE_VARIABLE = "SLATECRM_FILE_STORAGE"
#: The largest upload, in bytes, whatever a field allows (default 10 MiB).
MAX_UPLOAD_VARIABLE = "SLATECRM_MAX_UPLOAD_BYTES"
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
DEFAULT_FOLDER = "slatecrm-files"

_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*(?:/[a-z0-9][a-z0-9_.-]*)*$")


class StorageSettingError(ValueError):
    """A file storage setting that is not valid, naming the variable."""


@runtime_checkable
class FileBackend(Protocol):
    """Bytes by key. `put` reads `data` to its end; `open` gives a readable binary file (the
    caller closes it) or raises FileNotFoundError; `delete` of a missing key does nothing."""

    def put(self, key: str, data: BinaryIO) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"{key!r} is not a storage key")
    return key


class LocalDirectory:
    """Files in a folder: each key a file below it (its `/` are sub-folders), written to a
    temporary file first and renamed into place, so a reader never sees half a file."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalDirectory({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: BinaryIO) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(data, out)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


def default_location(database_url: str | None) -> str:
    """Beside a SQLite database file, else `./slatecrm-files`."""
    if database_url:
        from sqlalchemy.engine import make_url

        parsed = make_url(database_url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            return f"{parsed.database}-files"
    return DEFAULT_FOLDER


#: A plugin's answer for a storage URL: a backend, or None when the scheme is not its own.
PluginBackends = Callable[[str], "FileBackend | None"]


def backend_from_setting(setting: str, plugins: PluginBackends | None = None) -> FileBackend:
    """The backend a `SLATECRM_FILE_STORAGE` value names: a folder, a `file:` URL, or a URL
    a plugin answers for."""
    setting = setting.strip()
    parts = urlsplit(setting)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and os.name == "nt"):
        path = unquote(parts.path) if parts.scheme == "file" else setting
        if not path:
            raise StorageSettingError(f"{STORAGE_VARIABLE}={setting!r}: expected a folder or a URL")
        return LocalDirectory(path)
    backend = plugins(setting) if plugins is not None else None
    if backend is None:
        raise StorageSettingError(f"{STORAGE_VARIABLE}={setting!r}: no installed plugin stores files at "
                                  f"{parts.scheme}: URLs (the built-in backend takes a folder)")
    if not isinstance(backend, FileBackend):
        raise StorageSettingError(f"{STORAGE_VARIABLE}={setting!r}: the plugin's backend {backend!r} lacks "
                                  "put / open / delete / exists")
    return backend


def max_upload(environ: Mapping[str, str]) -> int:
    text = environ.get(MAX_UPLOAD_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_UPLOAD
    if not text.isdigit() or int(text) < 1:
        raise StorageSettingError(f"{MAX_UPLOAD_VARIABLE}={text!r}: expected a whole number of bytes, "
                                  "at least 1")
    return int(text)
