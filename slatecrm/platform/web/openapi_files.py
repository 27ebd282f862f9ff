"""The OpenAPI paths of uploaded files (web/uploads.py): upload, describe, download, thumbnail."""

from __future__ import annotations

from typing import Any

from ..files.store import THUMBNAIL_SIZES

FILE_ID = {"name": "id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}}


def schemas() -> dict[str, Any]:
    return {"StoredFile": {
        "type": "object",
        "required": ["id", "name", "size", "content_type", "sha256", "image", "created_at", "attached",
                     "url"],
        "properties": {
            "id": {"type": "integer", "description": "what a file field's value is written with"},
            "name": {"type": "string", "description": "the name as uploaded, without folders"},
            "size": {"type": "integer", "description": "bytes"},
            "content_type": {"type": "string", "description": "detected from the content, not the name"},
            "sha256": {"type": "string"},
            "image": {"type": "boolean", "description": "a raster image Pillow verified (thumbnails)"},
            "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "attached": {"type": "boolean", "description": "whether a record's field holds it"},
            "url": {"type": "string", "description": "where its content is downloaded"}}}}


def paths(responses: Any, problem: Any) -> dict[str, Any]:
    """`responses(ok, *refusals)` and `problem(status)` are openapi.py's helpers."""
    stored = {"description": "the stored file", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/StoredFile"}}}}
    binary = {"description": "the file's bytes, as an attachment (a type a browser could run is sent "
                             "as application/octet-stream)",
              "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
    return {
        "/api/v1/_files": {"post": {
            "operationId": "upload_file", "tags": ["Files"],
            "description": "Store one file (multipart/form-data, part `file`), up to "
                           "SLATECRM_MAX_UPLOAD_BYTES "
                           "(413 past it). It belongs to nobody until a record write of the uploader sets a "
                           "file field to its id; uploads never attached are deleted after a day.",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}}}}}},
            "responses": responses({"201": stored}, "400", "403", "413", "415", "422", "503")}},
        "/api/v1/_files/{id}": {"get": {
            "operationId": "get_file", "tags": ["Files"], "parameters": [FILE_ID],
            "description": "What is known of a file: readable by whoever may read the record holding it "
                           "(404 otherwise), or by its uploader until it is attached.",
            "responses": responses({"200": stored}, "404", "503")}},
        "/api/v1/_files/{id}/content": {"get": {
            "operationId": "download_file", "tags": ["Files"], "parameters": [FILE_ID],
            "responses": responses({"200": binary}, "404", "503")}},
        "/api/v1/_files/{id}/thumbnail": {"get": {
            "operationId": "file_thumbnail", "tags": ["Files"], "parameters": [FILE_ID, {
                "name": "size", "in": "query",
                "schema": {"type": "integer", "enum": list(THUMBNAIL_SIZES),
                           "default": THUMBNAIL_SIZES[-1]}}],
            "description": "A PNG thumbnail of an image file (404 for other files).",
            "responses": responses({"200": {"description": "a PNG", "content": {"image/png": {
                "schema": {"type": "string", "format": "binary"}}}}}, "400", "404", "503")}},
    }
