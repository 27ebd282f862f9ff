"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no exact decimal and no time zones: decimals are stored there as integers
scaled by 10^scale (exact, sortable, summable), and datetimes as UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class ScaledInteger(sa.types.TypeDecorator[Decimal]):
    """An exact decimal kept as an integer count of 10^-scale units (SQLite only)."""

    impl = sa.BigInteger
    cache_ok = True

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(Decimal(value).scaleb(self.scale).to_integral_value())

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-self.scale)


def exact_decimal(precision: int, scale: int) -> sa.types.TypeEngine[Any]:
    return sa.Numeric(precision, scale, asdecimal=True).with_variant(ScaledInteger(scale), "sqlite")


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A point in time: stored in UTC, always read back time-zone aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        moment = moment.astimezone(dt.UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def json_list() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def record_id() -> sa.types.TypeEngine[int]:
    """Primary and foreign keys: 64-bit, and SQLite's rowid alias for the primary key."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
