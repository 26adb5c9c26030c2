from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas import (
    Phone,
    UTCDateTime,
    from_epoch_millis,
    from_epoch_seconds,
    from_shanghai_local,
    normalise_phone,
)

PHONE = TypeAdapter(Phone)
TIME = TypeAdapter(UTCDateTime)


@pytest.mark.parametrize(
    "spelling",
    ["13800138000", "+86 138-0013-8000", "8613800138000", "+8613800138000", "0086 138 0013 8000",
     " 138 0013 8000 ", "(+86) 138.0013.8000", 13800138000],
)
def test_common_spellings_normalise_to_one_form(spelling):
    assert PHONE.validate_python(spelling) == "+8613800138000"


@pytest.mark.parametrize(
    "bad",
    ["", "12345", "23800138000", "1380013800", "138001380001", "+1 415 555 0100", "+86 010 6552 9988",
     "1380013800a", "12800138000", None, 13.8],
)
def test_anything_else_is_rejected(bad):
    with pytest.raises((ValueError, ValidationError)):
        normalise_phone(bad)


def test_rejection_does_not_echo_the_number():
    with pytest.raises(ValueError) as info:
        normalise_phone("+86 128-0013-8000")
    assert "0013" not in str(info.value)


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_every_mainland_mobile_round_trips(number):
    assert normalise_phone(number) == "+86" + number
    assert normalise_phone("+86 " + number[:3] + "-" + number[3:7] + "-" + number[7:]) == "+86" + number


def test_epoch_seconds_and_millis_are_explicit():
    assert from_epoch_seconds(1_700_000_000) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert from_epoch_millis(1_700_000_000_123) == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    # the same digits read as the other unit give another instant: nothing is guessed
    assert from_epoch_seconds("1700000000") != from_epoch_millis("1700000000")


def test_shanghai_local_time_is_converted_to_utc():
    assert from_shanghai_local("2024-05-01 08:00:00") == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        from_shanghai_local(datetime(2024, 5, 1, tzinfo=UTC))


def test_naive_datetimes_are_rejected_and_aware_ones_become_utc():
    with pytest.raises(ValidationError, match="naive datetime"):
        TIME.validate_python(datetime(2024, 5, 1, 8))
    east8 = datetime(2024, 5, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    stored = TIME.validate_python(east8)
    assert stored.tzinfo is UTC and stored.hour == 0
