"""Verified callbacks in the database: stored once before the acknowledgement, applied after it.

A callback's canonical records are kept in ``webhook_events.payload`` as JSON, keyed by the
platform's message id (``dedupe_key``), so that a platform re-delivering the same message stores
nothing new.  Phone numbers never reach that JSON in clear: a fan's phone is kept only encrypted
(when ``security.phone_encryption_key`` is configured), otherwise it is left out of the stored
copy and the fan is re-applied without it.

:func:`apply_event` writes the records through :func:`hub.sync.store.upsert` in one transaction with
the row's move to ``processed`` (or ``failed``, with the error), then announces the changes
through ``track_event``.  :func:`pending_events` finds rows a crash left ``received``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hub.people.phones import PhoneVault
from hub.plugins import PluginHost
from hub.sync.store import UpsertResult, announce, upsert
from schemas import Account, Fan, Message, Order, PointsEvent, Record
from schemas.tables import WebhookEventRow, utcnow

__all__ = [
    "RECORD_TYPES",
    "StoredEvent",
    "apply_event",
    "apply_events",
    "body_dedupe_key",
    "decode_records",
    "encode_records",
    "event_payload",
    "fit_key",
    "keep_pending",
    "needs_apply",
    "pending_events",
    "store_event",
    "store_events",
]

log = logging.getLogger("siyu.webhooks")

events_table = WebhookEventRow.__table__
RECORD_TYPES: dict[str, type[Record]] = {cls.__name__: cls for cls in (Fan, Order, PointsEvent, Message, Account)}
"""The canonical records a callback may carry, by the name stored in the payload."""

MAX_ERROR_LENGTH = 500
MAX_KEY_LENGTH = 160
"""A longer dedupe key (the column holds 191 characters) is stored as its SHA-256."""


@dataclass(frozen=True)
class StoredEvent:
    """A ``webhook_events`` row as :func:`store_event` left it.

    :param id: the row's id.
    :param created: ``False`` when the dedupe key was stored before (a re-delivery).
    """

    id: int | None
    created: bool


def body_dedupe_key(body: bytes) -> str:
    """The dedupe key of a callback whose platform sends no message id: the body's SHA-256."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def fit_key(dedupe_key: str) -> str:
    """``dedupe_key`` as stored: itself when short and printable, else ``key:`` + its SHA-256."""
    if len(dedupe_key) <= MAX_KEY_LENGTH and dedupe_key.isprintable():
        return dedupe_key
    return "key:" + hashlib.sha256(dedupe_key.encode("utf-8", "surrogatepass")).hexdigest()


def event_payload(records: Sequence[object], phones: PhoneVault, *, raw: Any = None, follow_up: Any = None,
                  sequence: str | None = None, occurred_at: datetime | None = None) -> dict[str, Any]:
    """The JSON stored in ``webhook_events.payload`` for one verified callback.

    :param records: the canonical records the adapter parsed.
    :param phones: seals the phones of the records (see :func:`encode_records`).
    :param raw: the event as it came, when the adapter kept it.
    :param follow_up: the adapter's follow-up (see :meth:`hub.adapter.Adapter.complete_webhook`).
    :param sequence: the state the event overwrites, ordered by ``occurred_at``.
    :param occurred_at: the platform's event time.
    :raises TypeError, ValueError: something in it is not JSON.
    """
    payload: dict[str, Any] = {"records": encode_records(records, phones)}
    if raw:
        payload["raw"] = dict(raw)
    if follow_up is not None:
        payload["follow_up"] = dict(follow_up)
    if sequence is not None and occurred_at is not None:
        payload["order"] = {"key": sequence[:MAX_KEY_LENGTH], "at": _millis(occurred_at)}
    json.dumps(payload, allow_nan=False)  # TypeError/ValueError now, not inside the INSERT
    return payload


def _millis(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return int(at.timestamp() * 1000)


def encode_records(records: Sequence[object], phones: PhoneVault) -> list[dict[str, Any]]:
    """The JSON form of ``records`` for ``webhook_events.payload``, without clear-text phones.

    Only the fields the adapter set are kept, so re-applying them updates no other field.

    :raises TypeError: for anything that is not a record the hub stores.
    """
    encoded = []
    for record in records:
        name = type(record).__name__
        if RECORD_TYPES.get(name) is not type(record):
            raise TypeError(f"a webhook cannot carry a {name}")
        assert isinstance(record, Record)
        data = record.model_dump(mode="json", exclude_unset=True)
        item: dict[str, Any] = {"type": name, "data": data}
        phone = data.pop("phone", None)
        if phone is not None:
            sealed = phones.encrypt(phone)
            if sealed is not None:
                item["phone_encrypted"] = sealed
        encoded.append(item)
    return encoded


def decode_records(items: Sequence[dict[str, Any]], phones: PhoneVault) -> list[Record]:
    """Rebuild the records that :func:`encode_records` stored (phones decrypted when kept)."""
    records = []
    for item in items:
        data = dict(item["data"])
        if "phone_encrypted" in item:
            data["phone"] = phones.decrypt(item["phone_encrypted"])
        records.append(RECORD_TYPES[item["type"]].model_validate(data))
    return records


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def store_event(
    engine: sa.Engine, platform: str, account_id: str, dedupe_key: str, payload: dict[str, Any]
) -> StoredEvent:
    """Insert the callback unless its ``dedupe_key`` is stored already; commits before returning.

    Two deliveries racing each other store one row: the database's unique key decides.

    :param engine: the hub's database.
    :param platform: the platform's name.
    :param account_id: the account the callback is addressed to.
    :param dedupe_key: the platform's message id (or :func:`body_dedupe_key`).
    :param payload: ``{"records": encode_records(...)}``.
    """
    now = utcnow()
    with engine.begin() as conn:
        stmt = (
            _insert(conn.dialect.name)(events_table)
            .values(platform=platform, account_id=account_id, dedupe_key=fit_key(dedupe_key), status="received",
                    payload=payload, received_at=now)
            .on_conflict_do_nothing(index_elements=["platform", "account_id", "dedupe_key"])
            .returning(events_table.c.id)
        )
        row_id = conn.execute(stmt).scalar_one_or_none()
    return StoredEvent(id=row_id, created=row_id is not None)


def needs_apply(payload: dict[str, Any]) -> bool:
    """Whether a stored callback has anything to apply: records, a follow-up, or an order that
    later events of the same state are checked against."""
    return bool(payload.get("records")) or payload.get("follow_up") is not None or payload.get("order") is not None


def store_events(
    engine: sa.Engine, items: Sequence[tuple[str, str, str, dict[str, Any]]]
) -> list[StoredEvent | Exception]:
    """:func:`store_event` for many callbacks in one transaction (a group commit); one outcome each.

    Each ``(platform, account_id, dedupe_key, payload)`` is inserted unless its key is stored
    already, by an earlier transaction or earlier in ``items`` (a re-delivery: ``created`` false).
    A callback with nothing to apply (:func:`needs_apply`) is stored ``processed`` at once.
    Every outcome holds only once the transaction committed.  When the transaction fails, each
    callback is stored in its own (:func:`store_event`), so one that cannot be stored fails alone:
    its outcome is the exception.
    """
    if not items:
        return []
    now = utcnow()
    first: dict[tuple[str, str, str], int] = {}
    rows = []
    for index, (platform, account_id, dedupe_key, payload) in enumerate(items):
        key = (platform, account_id, fit_key(dedupe_key))
        if key not in first:
            first[key] = index
            done = not needs_apply(payload)
            rows.append({"platform": key[0], "account_id": key[1], "dedupe_key": key[2],
                         "status": "processed" if done else "received", "payload": payload, "received_at": now,
                         "processed_at": now if done else None})
    c = events_table.c
    try:
        with engine.begin() as conn:
            # one statement for every row (executemany, sent as multi-row VALUES): it compiles once
            stmt = (_insert(conn.dialect.name)(events_table)
                    .on_conflict_do_nothing(index_elements=["platform", "account_id", "dedupe_key"])
                    .returning(c.id, c.platform, c.account_id, c.dedupe_key))
            inserted = {(r.platform, r.account_id, r.dedupe_key): r.id for r in conn.execute(stmt, rows)}
    except Exception:  # noqa: BLE001 - find the one at fault: each on its own
        if len(items) == 1:
            raise
        outcomes: list[StoredEvent | Exception] = []
        for platform, account_id, dedupe_key, payload in items:
            try:
                outcomes.append(store_event(engine, platform, account_id, dedupe_key, payload))
            except Exception as exc:  # noqa: BLE001 - handed to that callback's request
                outcomes.append(exc)
        return outcomes
    out: list[StoredEvent | Exception] = []
    for index, (platform, account_id, dedupe_key, _payload) in enumerate(items):
        key = (platform, account_id, fit_key(dedupe_key))
        row_id = inserted.get(key) if first[key] == index else None
        out.append(StoredEvent(id=row_id, created=row_id is not None))
    return out


def apply_events(engine: sa.Engine, host: PluginHost, phones: PhoneVault,
                 items: Sequence[tuple[int, Sequence[Record], Sequence[Record]]]) -> list[UpsertResult | None]:
    """:func:`apply_event` (``completed``) for many stored callbacks in one transaction.

    Each ``(event_id, records, extra)`` is a callback whose follow-up, if any, is done.  Those no
    longer ``received`` are skipped (``None``).  Events that carry an order (``sequence``) must go
    through :func:`apply_event`, which checks that no newer one was applied.  When the batch fails
    (a bad record, another process applying one of them), it is rolled back and each event is
    applied on its own, so a failure marks only its own row ``failed``.
    """
    if len(items) <= 1:
        return [apply_event(engine, host, phones, event_id, records, extra, completed=True)
                for event_id, records, extra in items]
    c = events_table.c
    results: list[UpsertResult | None] = []
    try:
        with engine.begin() as conn:
            ids = [event_id for event_id, _, _ in items]
            status = {row.id: row.status for row in conn.execute(sa.select(c.id, c.status).where(c.id.in_(ids)))}
            live = []
            for event_id, records, extra in items:
                if status.get(event_id) != "received" or event_id in live:
                    results.append(None)
                    continue
                live.append(event_id)
                results.append(upsert(conn, [*records, *extra], phones))
            if live:
                done = conn.execute(events_table.update().where(c.id.in_(live), c.status == "received")
                                    .values(status="processed", processed_at=utcnow(), error=None))
                if done.rowcount != len(live):  # another process applied one meanwhile
                    raise _AlreadyApplied
    except Exception:  # noqa: BLE001 - each on its own, its failure recorded on its row
        return [apply_event(engine, host, phones, event_id, records, extra, completed=True)
                for event_id, records, extra in items]
    for result in results:
        if result is not None:
            announce(host, result)
    applied = [r for r in results if r is not None]
    log.info("%d webhook event(s) processed: %d inserted, %d updated, %d unchanged", len(applied),
             sum(r.inserted for r in applied), sum(r.updated for r in applied), sum(r.unchanged for r in applied))
    return results


def apply_event(engine: sa.Engine, host: PluginHost, phones: PhoneVault, event_id: int,
                records: Sequence[Record] | None = None, extra: Sequence[Record] = (), *,
                completed: bool = False) -> UpsertResult | None:
    """Write a stored callback's records and mark it ``processed``; on failure mark it ``failed``.

    Returns ``None`` when the row was applied before (or failed).  Never raises for a bad
    record: the error is kept in the row (one line, no payload) and logged.

    :param engine: the hub's database.
    :param host: announces the changed records through ``track_event`` after the commit.
    :param phones: hashes the phones of the records.
    :param event_id: the ``webhook_events`` row.
    :param records: the records as parsed (saves decoding them again); ``None``: from the row.
    :param extra: records the adapter's ``complete_webhook`` added, applied with them.
    :param completed: the callback's follow-up was done (``extra`` is its result).  A callback with
        a follow-up is left ``received`` otherwise: only :func:`hub.webhooks.process.process_event`,
        which calls out first, applies it.
    """
    try:
        with engine.begin() as conn:
            row = conn.execute(
                sa.select(events_table.c.status, events_table.c.payload, events_table.c.platform,
                          events_table.c.account_id).where(events_table.c.id == event_id)
            ).one_or_none()
            if row is None or row.status != "received":
                return None
            if not completed and isinstance(row.payload, dict) and row.payload.get("follow_up") is not None:
                return None  # its calls out come first (hub.webhooks.process)
            note = None
            if _superseded(conn, row, event_id):
                records, extra, note = [], [], "superseded: a newer event for the same state was applied"
            elif records is None:
                records = decode_records(row.payload.get("records", []), phones)
            result = upsert(conn, [*records, *extra], phones)
            done = conn.execute(
                events_table.update()
                .where(events_table.c.id == event_id, events_table.c.status == "received")
                .values(status="processed", processed_at=utcnow(), error=note)
            )
            if done.rowcount != 1:  # another process applied it meanwhile: roll back ours
                raise _AlreadyApplied
    except _AlreadyApplied:
        return None
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the row, never lost
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:MAX_ERROR_LENGTH]
        with engine.begin() as conn:
            conn.execute(
                events_table.update()
                .where(events_table.c.id == event_id, events_table.c.status == "received")
                .values(status="failed", processed_at=utcnow(), error=error)
            )
        log.warning("webhook event %d failed: %s", event_id, type(exc).__name__)
        return None
    announce(host, result)
    log.info("webhook event %d processed: %d inserted, %d updated, %d unchanged",
             event_id, result.inserted, result.updated, result.unchanged)
    return result


class _AlreadyApplied(Exception):
    pass


def _superseded(conn: sa.Connection, row: Any, event_id: int) -> bool:
    """Whether an event for the same ``order.key`` and a later event time was applied already."""
    order = row.payload.get("order") if isinstance(row.payload, dict) else None
    if not order:
        return False
    c = events_table.c
    newer = conn.execute(
        sa.select(c.id).where(
            c.platform == row.platform, c.account_id == row.account_id, c.status == "processed", c.id != event_id,
            c.payload["order"]["key"].as_string() == order["key"],
            c.payload["order"]["at"].as_float() > float(order["at"]),
        ).limit(1)
    ).first()
    return newer is not None


def keep_pending(engine: sa.Engine, event_id: int, error: str) -> None:
    """Note why a callback's follow-up failed, leaving it ``received`` for the next processing."""
    with engine.begin() as conn:
        conn.execute(events_table.update()
                     .where(events_table.c.id == event_id, events_table.c.status == "received")
                     .values(error=error.splitlines()[0][:MAX_ERROR_LENGTH] if error else None))


def pending_events(engine: sa.Engine, *, platform: str | None = None, limit: int = 1000,
                   received_before: datetime | None = None) -> list[int]:
    """Ids of callbacks stored but not yet applied (a crash, a failed follow-up), oldest first.

    :param received_before: only those stored before this time (leaves the ones being processed
        right now alone).
    """
    query = sa.select(events_table.c.id).where(events_table.c.status == "received")
    if platform is not None:
        query = query.where(events_table.c.platform == platform)
    if received_before is not None:
        query = query.where(events_table.c.received_at < received_before)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(events_table.c.id).limit(limit)).scalars())
