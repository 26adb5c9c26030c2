"""The tables' shared metadata (naming convention), column types and column helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["UTCDateTimeType", "metadata", "utcnow"]

metadata = SQLModel.metadata
metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTimeType(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        """On SQLite a time is stored as the text of its naive UTC value, ``YYYY-MM-DD
        HH:MM:SS.ffffff`` (the SQLite dialect's storage format); a value already in UTC (every
        canonical record's) is written straight from ``isoformat``, the rest go the general way.
        """
        process = super().bind_processor(dialect)
        if dialect.name != "sqlite" or process is None:
            return process

        def utc_text(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is UTC:
                return value.isoformat(" ", "microseconds")[:26]  # the text before '+00:00'
            return process(value)

        return utc_text

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(nullable: bool = True, **kw: Any) -> Any:
    return Field(sa_type=UTCDateTimeType, nullable=nullable, **kw)


def _json(**kw: Any) -> Any:
    return Field(sa_type=sa.JSON, nullable=False, **kw)


def _code(length: int = 32, **kw: Any) -> Any:
    return Field(sa_type=sa.String(length), nullable=False, **kw)


def _flag(default: bool = True) -> Any:
    """Work pending on a row (stitching a fan, posting an order's points); set when the row is
    written, cleared by the step that does the work, so a crash between the two loses nothing."""
    return Field(default=default, nullable=False, index=True,
                 sa_column_kwargs={"server_default": sa.true() if default else sa.false()})


class _Stamped(SQLModel):
    inserted_at: datetime = _time(nullable=False, default_factory=utcnow)
    updated_at: datetime = _time(nullable=False, default_factory=utcnow)
