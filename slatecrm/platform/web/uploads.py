"""Uploaded files over HTTP: the upload endpoint, downloads and thumbnails, and the files a
record form sends.

Every download asks the records service (`stored_file`), which applies the read path's
access rules of the record holding the file: whoever cannot read the record (or the field)
gets a 404, as if there were no file. A download is always an attachment
(`Content-Disposition: attachment`), with `X-Content-Type-Options: nosniff`, a sandboxing
CSP, and a type a browser could run or render as a page (HTML, SVG, XML, scripts, as
detected from the content) served as application/octet-stream. Only thumbnails, which
Pillow re-encoded as PNG, are shown inline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from starlette._utils import AwaitableOrContextManager
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..files.detect import served_type
from ..files.store import CHUNK, THUMBNAIL_SIZES, StoredFile
from ..records.compiled import CompiledEntity
from ..records.errors import BadQuery
from ..records.service import RecordsService
from . import convertors  # noqa: F401  (registers the `recordid` path convertor)
from .jsonresponse import JSONResponse
from .pinning import records_of

#: The form part of an upload to POST /api/v1/_files.
UPLOAD_PART = "file"
#: Files one request may carry (a record form's file fields, several files each).
MAX_FILES = 100

#: What every answer holding a stored file's bytes says besides its type (and besides
#: `X-Content-Type-Options: nosniff`, which ui.SecurityHeaders puts on every answer).
SAFE_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'",
                "Cache-Control": "private, no-cache"}


def disposition(kind: str, name: str) -> str:
    """`attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII fallback and the name."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _parsed(request: Request) -> AwaitableOrContextManager[FormData]:
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(415, "send the file as multipart/form-data, in a part named \"file\"")
    return request.form(max_files=MAX_FILES, max_fields=1000)


async def upload(request: Request) -> Response:
    """POST /api/v1/_files: one file, in the multipart part `file`; answers its id (201)."""
    records = records_of(request)
    async with _parsed(request) as form:
        part = form.get(UPLOAD_PART)
        if not isinstance(part, UploadFile):
            raise BadQuery({UPLOAD_PART: ["send the file in a multipart part named \"file\" "
                                          "(with a file name)"]})
        stored = await run_in_threadpool(records.upload, part.file, part.filename)
    return JSONResponse(_json(stored), 201, {"Location": f"/api/v1/_files/{stored.id}"})


def _json(stored: StoredFile) -> dict[str, Any]:
    return {**stored.as_json(), "url": f"/api/v1/_files/{stored.id}/content"}


async def info(request: Request) -> Response:
    records = records_of(request)
    stored = await run_in_threadpool(records.stored_file, request.path_params["id"])
    return JSONResponse(_json(stored))


async def download(request: Request) -> Response:
    """The file's bytes, as an attachment, whoever may read the record holding it."""
    records = records_of(request)
    stored = await run_in_threadpool(records.stored_file, request.path_params["id"])
    handle = await run_in_threadpool(records.files.open, stored)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    headers = {**SAFE_HEADERS, "Content-Disposition": disposition("attachment", stored.name),
               "Content-Length": str(stored.size), "ETag": f'"{stored.sha256}"'}
    return StreamingResponse(chunks(), media_type=served_type(stored.content_type), headers=headers)


async def thumbnail(request: Request) -> Response:
    """An image's thumbnail (PNG, made by Pillow, so safe to show inline): `size` 64 or 240."""
    records = records_of(request)
    text = request.query_params.get("size", str(THUMBNAIL_SIZES[-1]))
    if text not in {str(s) for s in THUMBNAIL_SIZES}:
        raise BadQuery({"size": [f"{text[:20]!r} is not a thumbnail size; sizes: "
                                 f"{', '.join(map(str, THUMBNAIL_SIZES))}"]})
    stored = await run_in_threadpool(records.stored_file, request.path_params["id"])
    if not stored.image:
        raise HTTPException(404, f"file {stored.id} is not an image: it has no thumbnail")
    data = await run_in_threadpool(records.files.thumbnail, stored, int(text))
    name = stored.name.rsplit(".", 1)[0] + ".png"
    return Response(data, media_type="image/png", headers={
        **SAFE_HEADERS, "Content-Disposition": disposition("inline", name),
        "ETag": f'"{stored.sha256}-{text}"'})


async def store_form_files(records: RecordsService, ce: CompiledEntity, form: FormData) -> FormData:
    """A record form's data with each file sent in a file field's input stored (an upload of
    the principal's) and replaced by its id, which the field type's `read_form` reads. An
    empty file input (no file chosen) is left out."""
    inputs = {name for name, compiled in ce.fields.items() if compiled.type.holds_files}
    if not any(isinstance(v, UploadFile) for _, v in form.multi_items()):
        return form
    items: list[tuple[str, str | UploadFile]] = []
    try:
        for key, value in form.multi_items():
            if not isinstance(value, UploadFile):
                items.append((key, value))
            elif key in inputs and value.filename:
                stored = await run_in_threadpool(records.upload, value.file, value.filename)
                items.append((key, str(stored.id)))
    finally:
        await form.close()
    return FormData(items)


async def without_files(form: FormData) -> FormData:
    """A form's texts, its files (which validation on change does not store) closed and left out."""
    if not any(isinstance(v, UploadFile) for _, v in form.multi_items()):
        return form
    await form.close()
    return FormData([(k, v) for k, v in form.multi_items() if isinstance(v, str)])


async def parsed_form(request: Request) -> FormData:
    """A record form's data, files and all (within the request limits of web/limits.py)."""
    return await request.form(max_files=MAX_FILES, max_fields=10_000)


api_routes = [
    Route("/api/v1/_files", upload, methods=["POST"]),
    Route("/api/v1/_files/{id:recordid}", info, methods=["GET"]),
    Route("/api/v1/_files/{id:recordid}/content", download, methods=["GET"]),
    Route("/api/v1/_files/{id:recordid}/thumbnail", thumbnail, methods=["GET"]),
]
ui_routes = [
    Route("/files/{id:recordid}", download, methods=["GET"]),
    Route("/files/{id:recordid}/thumbnail", thumbnail, methods=["GET"]),
]
