"""The webhook receiver: an ASGI app that verifies, stores, acknowledges, then processes.

``GET|POST /webhooks/{platform}/{account_id}`` hands the raw request (method, path, query,
headers and the exact body bytes) to the account adapter's ``parse_webhook``, which verifies the
platform's signature or decrypts its envelope and returns canonical records plus the exact
response the platform expects.  Then, in this order:

1. the records (and the adapter's follow-up, if any) are stored in ``webhook_events`` under an
   identity taken from the signed content, committed; a re-delivery or replay of a stored
   callback stores nothing and gets the same acknowledgement.  Callbacks arriving together share
   one transaction (a group commit, :mod:`hub.webhooks.batch`); each is answered only after it;
2. the adapter's response (status, body, media type) is sent unchanged;
3. after the response, the callback is processed: the follow-up's calls out to the platform
   first, then the records, applied with other callbacks' in one transaction
   (:func:`hub.webhooks.stored.apply_events`; an event carrying an order goes alone through
   :func:`hub.webhooks.process.process_event`), so the platform's deadline waits for neither the
   platform's API nor the database work of identity and points.

A callback that fails verification (:class:`hub.errors.WebhookRejected`) gets the adapter's 4xx
and stores nothing; any other exception from the adapter is a 400, never a 500.  An unknown platform or account, or one whose adapter does not declare the
``webhooks`` capability, is a 404; a body over ``max_body`` bytes is a 413, refused without
reading the rest.  ``GET /healthz`` answers ``{"ok": true}``.

Logs name the platform, account, status and dedupe key, escaped and cut
(:func:`hub.webhooks.logsafe.clean`); never headers, query strings or bodies, which carry
signatures, tokens, phone numbers and message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub.adapter import WebhookRequest, WebhookResult
from hub.config import AccountSettings, Settings
from hub.errors import ConfigError, RateLimited, TokenExpired, TransientError, WebhookRejected
from hub.plugins import PluginHost
from hub.platform.account import AccountHandle, open_account
from hub.webhooks.backlog import Backlog
from hub.webhooks.batch import GroupWriter
from hub.webhooks.logsafe import clean
from hub.webhooks.process import follow_up_records, process_event, process_pending
from hub.webhooks.stored import StoredEvent, body_dedupe_key, event_payload, needs_apply
from schemas import Capability, Record
from schemas.tables import utcnow

__all__ = ["DEFAULT_MAX_BODY", "BodyTooLarge", "Receiver", "create_app"]

log = logging.getLogger("siyu.webhooks")

DEFAULT_MAX_BODY = 1024 * 1024
"""The largest callback body accepted, in bytes (1 MiB)."""
DEFAULT_RETRY_EVERY = 60.0
"""How often ``siyu serve`` tries pending callbacks again, in seconds."""

class BodyTooLarge(Exception):
    """The body passed the receiver's limit; answered with 413."""


@dataclass
class Receiver:
    """The state behind the app: plugins, configuration, database and the open accounts.

    :param host: the plugins (adapter classes and ``track_event``).
    :param settings: the configured accounts and phone vault.
    :param engine: the hub's database.
    :param max_body: the largest body accepted, in bytes.
    :param transport: the accounts' HTTP transport (tests hand a mock or an ASGI app).
    """

    host: PluginHost
    settings: Settings
    engine: sa.Engine
    max_body: int = DEFAULT_MAX_BODY
    transport: httpx.AsyncBaseTransport | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)
    _handles: dict[tuple[str, str], AccountHandle] = field(default_factory=dict, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _writers: tuple[GroupWriter, GroupWriter] | None = field(default=None, repr=False)
    backlog: Backlog = field(default_factory=Backlog, repr=False)
    """Turns to process stored callbacks, held back while callbacks arrive (acceptance first)."""

    def writers(self) -> tuple[GroupWriter, GroupWriter]:
        """The group writers ``(stores, applies)``: one shared writer on SQLite, whose one write
        lock they would otherwise fight over; two on PostgreSQL."""
        if self._writers is None:
            stores = GroupWriter(self.engine, self.host, self.settings.phones)
            applies = stores if self.engine.dialect.name == "sqlite" else GroupWriter(
                self.engine, self.host, self.settings.phones)
            self._writers = (stores, applies)
        return self._writers

    async def store(self, platform: str, account_id: str, dedupe_key: str, payload: dict[str, Any]) -> StoredEvent:
        """Store one verified callback in the next group commit; returns after that commit."""
        return await self.writers()[0].store(platform, account_id, dedupe_key, payload)

    def account_settings(self, platform: str, account_id: str) -> AccountSettings | None:
        """The configured account, or ``None`` when it is unknown or cannot take callbacks."""
        info = self.host.platforms.get(platform)
        if info is None or Capability.WEBHOOKS not in info.adapter.capabilities:
            return None
        try:
            return self.settings.account(platform, account_id)
        except ConfigError:
            return None

    async def handle(self, account: AccountSettings) -> AccountHandle:
        """The account's adapter, opened on first use and kept until :meth:`aclose`."""
        key = (account.platform, account.id)
        async with self._lock:
            if key not in self._handles:
                self._handles[key] = await self._stack.enter_async_context(
                    open_account(self.host, self.settings, account, engine=self.engine, transport=self.transport)
                )
            return self._handles[key]

    async def aclose(self) -> None:
        """Finish the queued writes, then close every account's client."""
        if self._writers is not None:
            for writer in set(self._writers):
                await writer.aclose()
            self._writers = None
        self._handles.clear()
        await self._stack.aclose()

    async def handle_for(self, platform: str, account_id: str) -> AccountHandle | None:
        """The open account of a stored callback, or ``None`` when it is no longer configured."""
        account = self.account_settings(platform, account_id)
        return None if account is None else await self.handle(account)

    async def apply(self, event_id: int, records: list[Record] | None = None) -> None:
        """Process one stored callback: its follow-up (calls out), then its records; never raises."""
        await process_event(self.engine, self.host, self.settings, event_id, self.handle_for, records)

    async def apply_fresh(self, platform: str, account_id: str, event_id: int, records: list[Record],
                          payload: dict[str, Any]) -> None:
        """Process a callback this receiver just stored, at its turn (:class:`Backlog`): its
        follow-up (calls out), then its records with other callbacks' in one transaction; never raises."""
        if payload.get("order") is not None:  # applied alone, after checking no newer one was
            async with self.backlog.turn():
                await self.apply(event_id, records)
            return
        extra: list[Record] = []
        try:
            async with self.backlog.turn():  # an apply waits its turn too, but joins a batch without holding it
                if payload.get("follow_up") is not None:
                    found = await follow_up_records(self.engine, event_id, platform, account_id,
                                                    payload["follow_up"], self.handle_for)
                    if found is None:
                        return  # kept pending, tried again later
                    extra = found
            await self.writers()[1].apply(event_id, records, extra)
        except Exception as exc:  # noqa: BLE001 - a background task has nobody to raise to
            log.error("webhook event %d: processing failed (%s)", event_id, clean(type(exc).__name__))

    async def apply_pending(self, received_before: datetime | None = None) -> int:
        """Process callbacks left ``received`` (a crash, a failed follow-up); returns how many were tried.

        :param received_before: only those stored before this time.
        """
        summary = await process_pending(self.host, self.settings, self.engine, handle_for=self.handle_for,
                                        received_before=received_before)
        return sum(summary.values())

    async def retry_pending(self, every: float) -> None:
        """Forever: every ``every`` seconds, process callbacks still pending after that long."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.apply_pending(received_before=utcnow() - timedelta(seconds=every))
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a bad round
                log.warning("retrying pending callbacks failed (%s)", clean(type(exc).__name__))


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (before reading it) one that declares or reaches more than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise BodyTooLarge
    return bytes(chunks)


def _not_found() -> Response:
    return PlainTextResponse("not found", status_code=404)


async def _receive(request: Request) -> Response:
    receiver: Receiver = request.app.state.receiver
    with receiver.backlog.receiving():  # processing of earlier callbacks holds back meanwhile
        return await _accept(receiver, request)


async def _accept(receiver: Receiver, request: Request) -> Response:
    platform = request.path_params["platform"]
    account_id = request.path_params["account_id"]
    where = f"{clean(platform, 32)}/{clean(account_id)}"  # request-supplied: escaped and cut for the logs
    account = receiver.account_settings(platform, account_id)
    if account is None:
        log.info("webhook %s: no such account taking callbacks (404)", where)
        return _not_found()
    try:
        body = await read_body(request, receiver.max_body)
    except BodyTooLarge:
        log.info("webhook %s: body over %d bytes (413)", where, receiver.max_body)
        return PlainTextResponse("payload too large", status_code=413, headers={"Connection": "close"})
    handle = await receiver.handle(account)
    raw = WebhookRequest(method=request.method, path=request.url.path, query=request.query_params,
                         headers=request.headers, body=body)
    try:
        result: WebhookResult = await handle.adapter.parse_webhook(handle.account, raw)
    except WebhookRejected as exc:
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        log.info("webhook %s rejected (%d): %s", where, status, clean(exc, 200))
        return PlainTextResponse("rejected", status_code=status)
    except (TransientError, RateLimited, TokenExpired) as exc:  # an adapter still calling out met an outage
        log.warning("webhook %s: the platform is unavailable (503): %s", where, clean(type(exc).__name__))
        return PlainTextResponse("unavailable", status_code=503, headers={"Retry-After": "30"})
    except Exception as exc:  # noqa: BLE001 - a body the adapter could not read is the sender's fault, never a 500
        log.warning("webhook %s refused (400): the adapter raised %s", where, clean(type(exc).__name__))
        return PlainTextResponse("rejected", status_code=400)
    response = Response(content=result.body, status_code=result.status_code, media_type=result.media_type)
    if not result.events and result.dedupe_key is None and not result.raw and result.follow_up is None:
        log.info("webhook %s answered (%d), nothing to store", where, result.status_code)
        return response
    records = list(result.events)
    dedupe_key = result.dedupe_key or body_dedupe_key(body)
    try:
        payload = event_payload(records, receiver.settings.phones, raw=result.raw, follow_up=result.follow_up,
                                sequence=result.sequence, occurred_at=result.occurred_at)
        stored = await receiver.store(platform, account_id, dedupe_key, payload)
    except (TypeError, ValueError, OverflowError) as exc:  # not storable as JSON: the adapter's or the body's fault
        log.warning("webhook %s refused (400): not storable (%s)", where, clean(type(exc).__name__))
        return PlainTextResponse("rejected", status_code=400)
    if not stored.created:
        log.info("webhook %s key=%s: a re-delivery, acknowledged, nothing stored", where, clean(dedupe_key, 96))
        return response
    log.info("webhook %s key=%s stored as event %d with %d record(s)%s", where, clean(dedupe_key, 96), stored.id,
             len(records), ", a follow-up pending" if result.follow_up is not None else "")
    if not needs_apply(payload):
        return response
    assert stored.id is not None
    response.background = BackgroundTask(receiver.apply_fresh, platform, account_id, stored.id, records, payload)
    return response


async def _healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(
    host: PluginHost,
    settings: Settings,
    engine: sa.Engine,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    transport: httpx.AsyncBaseTransport | None = None,
    apply_pending_on_start: bool = True,
    retry_pending_every: float | None = DEFAULT_RETRY_EVERY,
) -> Starlette:
    """The receiver as a Starlette app; ``app.state.receiver`` is its :class:`Receiver`.

    On start-up (ASGI lifespan) it applies callbacks a previous run stored but did not apply;
    on shut-down it closes the accounts' clients.

    :param host: the plugins.
    :param settings: the configuration (accounts, phone key).
    :param engine: the hub's database, migrated.
    :param max_body: the largest callback body accepted, in bytes.
    :param transport: the accounts' HTTP transport (a test seam).
    :param apply_pending_on_start: apply leftover ``received`` callbacks at start-up.
    :param retry_pending_every: while serving, process callbacks still pending (a follow-up that
        failed because the platform was down) this often, in seconds; ``None``: only at start-up.
    """
    receiver = Receiver(host=host, settings=settings, engine=engine, max_body=max_body, transport=transport)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if apply_pending_on_start:
            count = await receiver.apply_pending()
            if count:
                log.info("applied %d callback(s) left over by a previous run", count)
        retry = asyncio.create_task(receiver.retry_pending(retry_pending_every)) if retry_pending_every else None
        try:
            yield
        finally:
            if retry is not None:
                retry.cancel()
                with contextlib.suppress(BaseException):
                    await retry
            with contextlib.suppress(Exception):
                await receiver.aclose()

    app = Starlette(
        routes=[
            Route("/webhooks/{platform}/{account_id}", _receive, methods=["GET", "POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app
