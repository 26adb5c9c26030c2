"""Processing stored callbacks: the adapter's follow-up (the calls out), then the records.

A verified callback is stored and acknowledged before anything calls the platform.  What a
callback still needs from the platform (a customer to read, an order to fetch) was stored with it
as the adapter's ``follow_up``; :func:`process_event` hands it to the adapter's
``complete_webhook`` with the account open (its client retries each request), then applies the
stored records plus those the follow-up returned, in one transaction
(:func:`hub.webhooks.stored.apply_event`).  A follow-up that fails leaves the callback
``received``, its error noted, for the next processing: the receiver's start-up,
:func:`process_pending` (``siyu serve`` every minute; meant for ``siyu apply`` and the daemon too).  A replay was never stored, so it costs no
call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from hub.config import Settings
from hub.errors import ConfigError
from hub.platform.account import AccountHandle, open_account
from hub.plugins import PluginHost
from hub.webhooks.logsafe import clean
from hub.webhooks.stored import apply_event, events_table, keep_pending, pending_events
from schemas import Record

__all__ = ["HandleFor", "follow_up_records", "process_event", "process_pending", "process_pending_blocking"]

log = logging.getLogger("siyu.webhooks")

HandleFor = Callable[[str, str], Awaitable[AccountHandle | None]]
"""``(platform, account_id)`` → the open account, or ``None`` when it is not configured."""


def _row(engine: sa.Engine, event_id: int) -> Any:
    c = events_table.c
    with engine.connect() as conn:
        return conn.execute(sa.select(c.platform, c.account_id, c.status, c.payload)
                            .where(c.id == event_id)).one_or_none()


async def follow_up_records(engine: sa.Engine, event_id: int, platform: str, account_id: str,
                            follow_up: dict[str, Any], handle_for: HandleFor) -> list[Record] | None:
    """The records a stored callback's follow-up returns (the adapter's ``complete_webhook``), or
    ``None`` when it failed: the callback is then kept ``received``, the reason noted on its row.

    :param engine: the hub's database.
    :param event_id: the ``webhook_events`` row.
    :param platform: the callback's platform; :param account_id: its account.
    :param follow_up: what the adapter's ``parse_webhook`` left for later.
    :param handle_for: opens the callback's account.
    """
    handle = await handle_for(platform, account_id)
    if handle is None:
        await run_in_threadpool(keep_pending, engine, event_id, "the account is not configured")
        return None
    try:
        return list(await handle.adapter.complete_webhook(handle.account, follow_up))
    except Exception as exc:  # noqa: BLE001 - kept pending, tried again at the next processing
        await run_in_threadpool(keep_pending, engine, event_id, f"follow-up: {type(exc).__name__}: {exc}")
        log.warning("webhook event %d: follow-up failed (%s), kept pending", event_id, type(exc).__name__)
        return None


async def process_event(engine: sa.Engine, host: PluginHost, settings: Settings, event_id: int,
                        handle_for: HandleFor, records: Sequence[Record] | None = None) -> str:
    """Complete and apply one stored callback; returns ``processed``, ``pending`` or ``skipped``.

    Never raises: a follow-up failure keeps the callback pending, an apply failure marks it
    ``failed`` (see :func:`hub.webhooks.stored.apply_event`).

    :param engine: the hub's database.
    :param host: the plugins (``track_event``).
    :param settings: the configuration (phone key).
    :param event_id: the ``webhook_events`` row.
    :param handle_for: opens the callback's account, for the follow-up.
    :param records: the records as parsed (saves decoding them); ``None``: from the row.
    """
    try:
        row = await run_in_threadpool(_row, engine, event_id)
        if row is None or row.status != "received":
            return "skipped"
        extra: Sequence[Record] = ()
        follow_up = row.payload.get("follow_up") if isinstance(row.payload, dict) else None
        if follow_up is not None:
            found = await follow_up_records(engine, event_id, row.platform, row.account_id, follow_up, handle_for)
            if found is None:
                return "pending"
            extra = found
        await run_in_threadpool(functools.partial(apply_event, engine, host, settings.phones, event_id, records,
                                                  extra, completed=True))
        return "processed"
    except Exception as exc:  # noqa: BLE001 - a background task has nobody to raise to
        log.error("webhook event %d: processing failed (%s)", event_id, clean(type(exc).__name__))
        return "pending"


async def process_pending(host: PluginHost, settings: Settings, engine: sa.Engine, *,
                          transport: httpx.AsyncBaseTransport | None = None,
                          handle_for: HandleFor | None = None,
                          received_before: datetime | None = None) -> dict[str, int]:
    """Process every ``received`` callback, oldest first, opening each account once.

    Returns how many ended ``processed``, ``pending`` (a follow-up failed) and ``skipped``.

    :param host: the plugins.
    :param settings: the configuration.
    :param engine: the hub's database.
    :param transport: the accounts' HTTP transport (a test seam).
    :param handle_for: an opener of accounts already open (the receiver's); default: opened here.
    :param received_before: only callbacks stored before this time.
    """
    summary = {"processed": 0, "pending": 0, "skipped": 0}
    ids = await run_in_threadpool(functools.partial(pending_events, engine, received_before=received_before))
    if not ids:
        return summary
    async with AsyncExitStack() as stack:
        handles: dict[tuple[str, str], AccountHandle | None] = {}

        async def opened(platform: str, account_id: str) -> AccountHandle | None:
            if (platform, account_id) not in handles:
                try:
                    account = settings.account(platform, account_id)
                except ConfigError:
                    handles[platform, account_id] = None
                else:
                    handles[platform, account_id] = await stack.enter_async_context(
                        open_account(host, settings, account, engine=engine, transport=transport))
            return handles[platform, account_id]

        for event_id in ids:
            outcome = await process_event(engine, host, settings, event_id, handle_for or opened)
            summary[outcome] += 1
    return summary


def process_pending_blocking(host: PluginHost, settings: Settings, engine: sa.Engine) -> dict[str, int]:
    """:func:`process_pending` for a caller outside any event loop (``siyu apply``, a daemon thread)."""
    return asyncio.run(process_pending(host, settings, engine))
