"""Path convertors shared by the API and the UI routes."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class RecordId(Convertor[int]):
    """A record id in a path: at most 18 digits, so it fits the 64-bit id column (a longer
    one finds no route, a 404, instead of overflowing in the database)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("recordid", RecordId())
