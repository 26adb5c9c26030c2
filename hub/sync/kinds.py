"""What the hub stores of each kind of canonical record: its table, natural key and row values.

A :class:`Kind` says how a record becomes a row: the table and the field that is its uid on the
natural key ``(platform, account_id, uid)``, the column values of a record (``Kind.values``; for
an update, of the fields its producer set only), how an update merges into the stored row, the
column values of a batch of new records a column at a time (:func:`new_rows`), and the
pending-work flags a write raises.  Phone numbers become their keyed hash (and, when configured,
their encryption) here; the clear number goes no further.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from hub.people.phones import PhoneVault
from schemas import Account, Fan, Message, Order, PointsEvent, Record
from schemas.tables import AccountRow, FanRow, MessageRow, OrderRow, PointsEventRow

__all__ = ["KINDS", "Kind", "kind_of", "new_rows"]


_FAN_DERIVED = frozenset({"phone", "other_phones", "interactions_added"})
"""Fan fields that are not columns: they become other columns' values."""
_FAN_FIELDS = Fan.model_fields  # read once: pydantic's class accessor is not free


def _fan_values(fan: Fan, fields: Iterable[str], phones: PhoneVault) -> dict[str, Any]:
    source = fan.__dict__  # pydantic keeps the validated field values here
    values = {name: source[name] for name in fields if name not in _FAN_DERIVED}
    if "interactions_added" in fields and fan.interactions_added:
        # a new fan starts from its reported counters plus these
        counts = dict(fan.interactions)
        for kind, added in fan.interactions_added.items():
            counts[kind] = counts.get(kind, 0) + added
        values["interactions"] = counts
    if "phone" in fields:
        values["phone_hash"] = phones.hash(fan.phone) if fan.phone else None
        values["phone_encrypted"] = phones.encrypt(fan.phone) if fan.phone else None
    if values.get("follows"):
        values["follows"] = sorted((f.model_dump(mode="json") for f in fan.follows), key=lambda f: f["staff_id"])
    elif "follows" in values:
        values["follows"] = []
    if "other_phones" in fields and fan.other_phones:
        # hashed into identity keys; the numbers themselves go no further
        hashed = {f"phone:{phones.hash(number)[:12]}": phones.hash(number) for number in fan.other_phones
                  if number != fan.phone}
        values["identity_keys"] = {**values.get("identity_keys", fan.identity_keys), **hashed}
    return values


_FAN_READ = (*(name for name in _FAN_FIELDS if name not in _FAN_DERIVED), "phone", "interactions_added", "other_phones")
_FAN_VALUES = itemgetter(*_FAN_READ)


def _fan_columns(fans: list[Fan], phones: PhoneVault) -> dict[str, list[Any]]:
    """The column values of new fans, a column at a time: what :func:`_fan_values` gives each
    fan, without a dictionary per fan.  A first sync inserts fans by the million, so the work is
    done by C-level loops over the records' field values; only the few records that carry phone
    numbers, relations or added counters get work of their own."""
    states = [fan.__dict__ for fan in fans]  # pydantic keeps the validated field values here
    # each record read once (the values it holds, in one tuple), then turned into columns
    columns = dict(zip(_FAN_READ, map(list, zip(*map(_FAN_VALUES, states), strict=True)), strict=True))
    numbers = columns.pop("phone")
    columns["phone_hash"] = [phones.hash(number) if number else None for number in numbers]
    columns["phone_encrypted"] = ([phones.encrypt(number) if number else None for number in numbers]
                                  if phones.encrypts else [None] * len(fans))
    # the per-record work, where a record has any (``any`` finds out in one C loop)
    for field, column, derived in (("follows", "follows", "follows"),
                                   ("interactions_added", "interactions", "interactions_added"),
                                   ("other_phones", "identity_keys", "other_phones")):
        given = columns.pop(field) if field != column else columns[field]
        if any(given):
            target = columns[column]
            for i in [i for i, value in enumerate(given) if value]:
                target[i] = _fan_values(fans[i], (derived,), phones)[column]
    return columns


def _merge_fan(fan: Fan, row: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Follow relations merge by ``staff_id`` and identity keys by kind; nothing is dropped.

    A relation the record carries updates the stored one with the fields its producer set (an
    ``ended_at`` from a deletion callback, a new remark); relations the record does not mention
    are kept, so a full sync that sees only current relations does not erase ended ones.
    """
    if "follows" in values:
        merged = {f["staff_id"]: dict(f) for f in row["follows"] or []}
        for relation in fan.follows:
            update = relation.model_dump(mode="json", exclude_unset=True)
            merged[relation.staff_id] = {**merged.get(relation.staff_id, {}), **update}
        values["follows"] = [merged[k] for k in sorted(merged)]
    if "identity_keys" in values:
        values["identity_keys"] = {**(row["identity_keys"] or {}), **values["identity_keys"]}
    if fan.interactions_added:  # added to what is stored (or to the totals this record also sets)
        counts = dict(fan.interactions if "interactions" in fan.model_fields_set else row["interactions"] or {})
        for kind, added in fan.interactions_added.items():
            counts[kind] = counts.get(kind, 0) + added
        values["interactions"] = counts
    return values


def _plain_values(record: Record, fields: Iterable[str], _phones: PhoneVault) -> dict[str, Any]:
    return {name: getattr(record, name) for name in fields}


def _account_values(account: Account, fields: Iterable[str], _phones: PhoneVault) -> dict[str, Any]:
    values = {name: getattr(account, name) for name in fields}
    if "status" in values and values["status"] is None:
        values["status"] = "active"  # a new account is taken as authorised until told otherwise
    return values


def _record_columns(kind: Kind, records: list[Record], phones: PhoneVault) -> dict[str, list[Any]]:
    """The column values of new records of any kind, from each record's values."""
    every_field = kind.model.model_fields  # once a page: pydantic's class accessor is not free
    rows = [kind.values(record, every_field, phones) for record in records]
    names = list(rows[0])
    if len(names) == 1:
        return {names[0]: [row[names[0]] for row in rows]}
    return dict(zip(names, map(list, zip(*map(itemgetter(*names), rows), strict=True)), strict=True))


def _flag_columns(
    flags: tuple[tuple[str, frozenset[str] | None], ...], count: int, columns: dict[str, list[Any]],
) -> dict[str, list[bool]]:
    """Each pending-work flag of ``count`` new rows, a column at a time: raised where the row
    writes a value to a field the flag watches (``None``: any field; a new row writes them all)."""
    out: dict[str, list[bool]] = {}
    for flag, watched in flags:
        if watched is None:
            out[flag] = [True] * count
            continue
        given = [columns[name] for name in sorted(watched & columns.keys())]
        if any(None not in column for column in given):  # one field has a value in every row
            out[flag] = [True] * count
            continue
        raised = [False] * count
        for column in given:
            raised = [up or value is not None for up, value in zip(raised, column, strict=True)]
        out[flag] = raised
    return out


def _replace(_record: Any, _row: Any, values: dict[str, Any]) -> dict[str, Any]:
    return values


@dataclass(frozen=True, eq=False)
class Kind:
    """How records of one type are stored (see the module's docstring)."""

    model: type[Record]
    table: sa.Table
    uid: str
    values: Callable[[Any, Iterable[str], PhoneVault], dict[str, Any]]
    merge: Callable[[Any, Any, dict[str, Any]], dict[str, Any]] = _replace
    columns: Callable[[list[Any], PhoneVault], dict[str, list[Any]]] | None = None
    """The column values of new records (default: :func:`_record_columns`)."""
    flags: tuple[tuple[str, frozenset[str] | None], ...] = ()
    """Pending-work columns, each raised when the fields it watches are written with a value
    (``None``: any field); :mod:`hub.sync.apply` clears them once the work is done."""

    @property
    def key(self) -> tuple[str, ...]:
        """The columns of the natural key (a unique constraint of the table)."""
        return tuple(dict.fromkeys(("platform", "account_id", self.uid)))


ANY = None
KINDS: dict[type[Record], Kind] = {
    Fan: Kind(Fan, FanRow.__table__, "platform_uid", _fan_values, _merge_fan, _fan_columns, flags=(
        ("needs_stitch", frozenset({"union_id", "phone_hash", "identity_keys"})),
        ("needs_card", frozenset({"card_no", "card_status"})),
    )),
    Order: Kind(Order, OrderRow.__table__, "order_id", _plain_values, flags=(("needs_apply", ANY),)),
    PointsEvent: Kind(PointsEvent, PointsEventRow.__table__, "event_id", _plain_values, flags=(("needs_apply", ANY),)),
    Account: Kind(Account, AccountRow.__table__, "account_id", _account_values),
    Message: Kind(Message, MessageRow.__table__, "platform_msg_id", _plain_values),
}


def kind_of(record_type: type[Record]) -> Kind:
    """The kind of a record type.

    :raises TypeError: for a record kind the hub does not store.
    """
    kind = KINDS.get(record_type)
    if kind is None:
        raise TypeError(f"cannot store a {record_type.__name__}")
    return kind


STAMPS = ("inserted_at", "updated_at")


def new_rows(kind: Kind, records: list[Record], phones: PhoneVault, now: datetime) -> dict[str, list[Any]]:
    """The column values of new rows of ``records`` (their fields, the pending-work flags a new
    row raises and its time stamps), a column at a time, as Python values."""
    count = len(records)
    columns = (kind.columns or partial(_record_columns, kind))(records, phones)
    columns.update(_flag_columns(kind.flags, count, columns))
    for name in STAMPS:
        columns[name] = [now] * count
    return columns
