"""Field types that validate at the boundary: phone numbers, times, ids and money.

Times
    Storage holds timezone-aware UTC.  A platform sends either epoch seconds, epoch milliseconds or
    a local Asia/Shanghai wall-clock string; the code that maps a platform field says which, with
    :func:`from_epoch_seconds`, :func:`from_epoch_millis` or :func:`from_shanghai_local`.  Nothing
    here guesses the unit from a number's magnitude, and a naive ``datetime`` is rejected.

Phones
    :data:`Phone` accepts a mainland China mobile number in any common spelling
    (``+86 138-0013-8000``, ``8613800138000``, ``13800138000``) and normalises it to E.164
    (``+8613800138000``).  Anything else is rejected.  The error never repeats the number.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

__all__ = [
    "SHANGHAI",
    "Fen",
    "Id",
    "Phone",
    "UTCDateTime",
    "from_epoch_millis",
    "from_epoch_seconds",
    "from_shanghai_local",
    "normalise_phone",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")

_SEPARATORS = re.compile(r"[\s\-().]")
_MAINLAND_MOBILE = re.compile(r"1[3-9]\d{9}")


def normalise_phone(value: object) -> str:
    """Return a mainland mobile number as ``+86`` followed by its 11 digits.

    :param value: the number as a platform or an operator wrote it.
    :raises ValueError: if it is not a mainland mobile number; the message does not echo it.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("a phone number must be a string")
    digits = _SEPARATORS.sub("", value.strip())
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _MAINLAND_MOBILE.fullmatch(digits):
        raise ValueError("not a mainland China mobile number (expected 11 digits starting 13-19)")
    return "+86" + digits


def _require_aware_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:  # what from_epoch_seconds and from_epoch_millis give
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "naive datetime: say which zone it is in (from_epoch_seconds, from_epoch_millis, "
            "from_shanghai_local)"
        )
    return value.astimezone(UTC)


def from_epoch_seconds(value: int | str) -> datetime:
    """A platform field documented as Unix seconds."""
    return datetime.fromtimestamp(value if type(value) is int else int(value), UTC)


def from_epoch_millis(value: int | str) -> datetime:
    """A platform field documented as Unix milliseconds."""
    millis = int(value)
    return datetime.fromtimestamp(millis // 1000, tz=UTC).replace(microsecond=(millis % 1000) * 1000)


def from_shanghai_local(value: str | datetime) -> datetime:
    """A platform field documented as Asia/Shanghai wall-clock time (``2024-05-01 12:00:00``)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if value.tzinfo is not None:
        raise ValueError("expected a local time without a zone")
    return value.replace(tzinfo=SHANGHAI).astimezone(UTC)


Phone = Annotated[str, BeforeValidator(normalise_phone)]
"""A mainland mobile number, normalised to ``+86XXXXXXXXXXX``."""

UTCDateTime = Annotated[datetime, AfterValidator(_require_aware_utc)]
"""A timezone-aware datetime, converted to UTC; naive values are rejected."""

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=191)]
"""A platform identifier: non-empty after stripping white space."""

Fen = Annotated[int, Field(ge=0, strict=True)]
"""Money in integer fen (1 yuan = 100 fen), never negative, never a float."""
