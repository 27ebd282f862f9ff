"""Path convertors shared by the API and the UI routes."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from slatecrm.digits import RECORD_ID_MAX, parse_digits


class RecordId(Convertor[int]):
    """A record id in a path: at most 18 digits, so it is below RECORD_ID_MAX and fits the
    64-bit id column (a longer one finds no route, a 404, instead of overflowing in the
    database; ids are counted from 1, so 10^18 is never reached)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        record_id = parse_digits(value, RECORD_ID_MAX)
        assert record_id is not None  # the regex admits only what parse_digits accepts
        return record_id

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("recordid", RecordId())


class CollectionName(Convertor[str]):
    """An entity's name as the last segment of an API path: any segment but the API's own
    fixed routes (`meta`, `openapi.json`, `workflows`: names no entity may take), so that a POST to one
    of them is their 405 with `Allow`, not a create that finds no JSON (415)."""

    regex = r"(?!(?:meta|openapi\.json|workflows)$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("collection", CollectionName())
