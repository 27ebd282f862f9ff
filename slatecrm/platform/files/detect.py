"""A file's content type from its bytes, never from its name or what the client said.

puremagic (a maintained, pure-Python table of signatures) reads the first bytes; what it
does not know is text/plain when it is UTF-8 text, else application/octet-stream. A file
that looks like a raster image is opened with Pillow and verified: only then is it an
image (with its size), and its type is the one Pillow found. libmagic is not needed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import BinaryIO

import puremagic
from PIL import Image

#: Bytes read to detect a type (the signatures puremagic knows sit within them).
HEAD_BYTES = 8192
#: The largest image Pillow opens (pixels): larger ones are kept as files, not images
#: (a decompression bomb would take gigabytes to thumbnail).
MAX_IMAGE_PIXELS = 50_000_000
#: Types a browser may run or render as a page: never served as themselves.
ACTIVE_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                "text/javascript", "application/javascript", "application/ecmascript")


@dataclass(frozen=True)
class Detected:
    content_type: str
    image: bool = False
    width: int | None = None
    height: int | None = None


def detect(stream: BinaryIO) -> Detected:
    """What `stream` holds (read from the start; left at its start)."""
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    content_type = _by_signature(head)
    if content_type.startswith("image/") and content_type not in ("image/svg+xml",):
        image = _image(stream)
        stream.seek(0)
        if image is not None:
            return image
    return Detected(content_type)


def _by_signature(head: bytes) -> str:
    if not head:
        return "application/octet-stream"
    try:
        found = puremagic.from_string(head, mime=True)
    except (puremagic.PureError, ValueError):
        found = ""
    if found:
        return str(found).lower()
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError as error:
            if error.start >= len(head) - 4:  # a character cut at the end of the head
                return "text/plain"
    return "application/octet-stream"


def _image(stream: BinaryIO) -> Detected | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    return None
                mime = Image.MIME.get(image.format or "")
                image.verify()
    except Exception:
        return None
    if not mime or not mime.startswith("image/"):
        return None
    return Detected(mime, True, width, height)


def served_type(content_type: str) -> str:
    """The Content-Type a download is served with: its own, unless a browser could run it
    (HTML, SVG, XML, scripts), which are served as application/octet-stream."""
    if content_type in ACTIVE_TYPES or "html" in content_type or "xml" in content_type \
            or "script" in content_type:
        return "application/octet-stream"
    return content_type
