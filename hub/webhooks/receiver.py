"""The webhook receiver: an ASGI app that verifies, stores, acknowledges, then processes.

``GET|POST /webhooks/{platform}/{account_id}`` hands the raw request (method, path, query,
headers and the exact body bytes) to the account adapter's ``parse_webhook``, which verifies the
platform's signature or decrypts its envelope and returns canonical records plus the exact
response the platform expects.  Then, in this order:

1. the records are stored in ``webhook_events`` under the platform's message id, committed;
   a re-delivery of a stored message stores nothing and gets the same acknowledgement;
2. the adapter's response (status, body, media type) is sent unchanged;
3. after the response, the records are applied (:func:`hub.webhooks.stored.apply_event`), so
   the platform's deadline does not wait for the database work of identity and points.

A callback that fails verification (:class:`hub.errors.WebhookRejected`) gets the adapter's 4xx
and stores nothing.  An unknown platform or account, or one whose adapter does not declare the
``webhooks`` capability, is a 404; a body over ``max_body`` bytes is a 413, refused without
reading the rest.  ``GET /healthz`` answers ``{"ok": true}``.

Logs name the platform, account, status and dedupe key; never headers, query strings or bodies,
which carry signatures, tokens, phone numbers and message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub.adapter import WebhookRequest, WebhookResult
from hub.config import AccountSettings, Settings
from hub.errors import ConfigError, WebhookRejected
from hub.plugins import PluginHost
from hub.platform.account import AccountHandle, open_account
from hub.webhooks.stored import apply_event, body_dedupe_key, encode_records, pending_events, store_event
from schemas import Capability, Record

__all__ = ["DEFAULT_MAX_BODY", "BodyTooLarge", "Receiver", "create_app"]

log = logging.getLogger("siyu.webhooks")

DEFAULT_MAX_BODY = 1024 * 1024
"""The largest callback body accepted, in bytes (1 MiB)."""


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
        """Close every account's client."""
        self._handles.clear()
        await self._stack.aclose()

    async def apply(self, event_id: int, records: list[Record] | None = None) -> None:
        """Apply one stored callback (in a worker thread); a failure is logged, never raised."""
        try:
            await run_in_threadpool(apply_event, self.engine, self.host, self.settings.phones, event_id, records)
        except Exception:  # noqa: BLE001 - a background task has nobody to raise to
            log.exception("webhook event %d: applying failed", event_id)

    async def apply_pending(self) -> int:
        """Apply callbacks a crash left stored but unapplied; returns how many were tried."""
        ids = await run_in_threadpool(pending_events, self.engine)
        for event_id in ids:
            await self.apply(event_id)
        return len(ids)


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
    platform = request.path_params["platform"]
    account_id = request.path_params["account_id"]
    account = receiver.account_settings(platform, account_id)
    if account is None:
        log.info("webhook %s/%s: no such account taking callbacks (404)", platform, account_id)
        return _not_found()
    try:
        body = await read_body(request, receiver.max_body)
    except BodyTooLarge:
        log.info("webhook %s/%s: body over %d bytes (413)", platform, account_id, receiver.max_body)
        return PlainTextResponse("payload too large", status_code=413, headers={"Connection": "close"})
    handle = await receiver.handle(account)
    raw = WebhookRequest(method=request.method, path=request.url.path, query=request.query_params,
                         headers=request.headers, body=body)
    try:
        result: WebhookResult = await handle.adapter.parse_webhook(handle.account, raw)
    except WebhookRejected as exc:
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        log.info("webhook %s/%s rejected (%d): %s", platform, account_id, status, exc)
        return PlainTextResponse("rejected", status_code=status)
    response = Response(content=result.body, status_code=result.status_code, media_type=result.media_type)
    if not result.events and result.dedupe_key is None and not result.raw:
        log.info("webhook %s/%s answered (%d), nothing to store", platform, account_id, result.status_code)
        return response
    records = list(result.events)
    dedupe_key = result.dedupe_key or body_dedupe_key(body)
    payload = {"records": encode_records(records, receiver.settings.phones)}
    if result.raw:  # an event with no canonical record (or a platform's extra facts) is kept as it came
        payload["raw"] = dict(result.raw)
    stored = await run_in_threadpool(store_event, receiver.engine, platform, account_id, dedupe_key, payload)
    if not stored.created:
        log.info("webhook %s/%s key=%s: a re-delivery, acknowledged, nothing stored",
                 platform, account_id, dedupe_key)
        return response
    log.info("webhook %s/%s key=%s stored as event %d with %d record(s)",
             platform, account_id, dedupe_key, stored.id, len(records))
    response.background = BackgroundTask(receiver.apply, stored.id, records)
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
    """
    receiver = Receiver(host=host, settings=settings, engine=engine, max_body=max_body, transport=transport)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if apply_pending_on_start:
            count = await receiver.apply_pending()
            if count:
                log.info("applied %d callback(s) left over by a previous run", count)
        try:
            yield
        finally:
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
