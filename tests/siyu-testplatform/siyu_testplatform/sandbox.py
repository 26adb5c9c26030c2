"""The testplat sandbox: an ASGI app speaking testplat's protocol, with faults on demand.

Protocol
    ``POST /oauth/token`` (form ``client_id``, ``client_secret``) → ``{"code":0,"access_token","expires_in"}``.
    ``GET /v1/fans?cursor=&count=`` and ``GET /v1/orders?cursor=&count=`` with ``Authorization:
    Bearer <token>`` → ``{"code":0,"data":{"fans"|"orders":[…],"next_cursor":"…"}}``; an empty
    ``next_cursor`` ends the list.  ``GET /v1/fans/{uid}`` → ``{"code":0,"data":{…one fan…}}``.  ``POST /v1/cards`` ``{"card_no","balance","level"}`` sets a
    member card (absolute values).  Callbacks carry ``X-Testplat-Timestamp`` and
    ``X-Testplat-Signature`` = hex HMAC-SHA256(client_secret, timestamp + "." + body).  Body codes: 1001 token expired, 1002 rate limited,
    2001 system busy, 4001 bad parameter, 4003 bad credentials.

Faults (:class:`Faults`, settable at ``POST /_admin/faults``), decided by a seeded generator:
a documented per-second limit (429 beyond it); 429 with ``Retry-After``; 5xx bursts; responses slower than the client's timeout; tokens that expire
after some data requests; malformed JSON; pages that repeat records of the page before; empty
pages that still advance the cursor.  ``GET /_admin/stats`` counts what happened, including
``<kind>_pages_served_twice``: list pages answered successfully more than once for one cursor.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from siyu_testplatform.sandbox_data import Population
from siyu_testplatform.wire import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

CLIENT_ID = "testplat-client"
CLIENT_SECRET = "testplat-secret-0123456789"


@dataclass
class Faults:
    rate_limited: float = 0.0
    retry_after: str = "0"
    server_error: float = 0.0
    burst: int = 1
    timeout: float = 0.0
    timeout_seconds: float = 1.0
    malformed: float = 0.0
    token_ttl_requests: int = 0
    duplicate: float = 0.0
    empty: float = 0.0
    limit_per_second: int = 0


@dataclass
class State:
    population: Population
    faults: Faults
    rng: random.Random
    tokens: dict[str, int] = field(default_factory=dict)  # token -> data requests left (or -1)
    stats: dict[str, int] = field(default_factory=dict)
    burst_left: int = 0
    recent: list[float] = field(default_factory=list)
    cards: dict[str, dict[str, int]] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)  # "kind:cursor" -> times a page was served

    def serve(self, kind: str, cursor: str) -> None:
        key = f"{kind}:{cursor}"
        self.served[key] = self.served.get(key, 0) + 1
        self.count(f"{kind}_served")
        if self.served[key] == 2:
            self.count(f"{kind}_pages_served_twice")

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1


def _cursor_offset(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        return int(cursor.split(".")[0].lstrip("o"))
    except ValueError:
        return -1


def _error(code: int, message: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def make_app(fans: int = 1000, *, seed: int = 0, faults: Faults | None = None) -> Starlette:
    state = State(Population(fans, seed), faults or Faults(), random.Random(seed))

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        state.count("token_requests")
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return _error(4003, "bad credentials")
        value = secrets.token_hex(16)
        ttl = state.faults.token_ttl_requests
        state.tokens[value] = ttl if ttl > 0 else -1
        return JSONResponse({"code": 0, "access_token": value, "expires_in": 7200})

    async def faulted(request: Request) -> Response | None:
        f, rng = state.faults, state.rng
        if f.limit_per_second:
            now = time.monotonic()
            state.recent = [t for t in state.recent if now - t < 1.0]
            if len(state.recent) >= f.limit_per_second:
                state.count("over_limit")
                return JSONResponse({"code": 1002, "message": "over the limit"}, status_code=429,
                                    headers={"Retry-After": "1"})
            state.recent.append(now)
        if state.burst_left > 0:
            state.burst_left -= 1
            state.count("server_errors")
            return Response("<html>busy</html>", status_code=503, media_type="text/html")
        roll = rng.random()
        edges = [f.rate_limited, f.server_error, f.timeout, f.malformed]
        if roll < edges[0]:
            state.count("rate_limited")
            return JSONResponse({"code": 1002, "message": "too many requests"}, status_code=429,
                                headers={"Retry-After": f.retry_after})
        roll -= edges[0]
        if roll < edges[1]:
            state.burst_left = max(0, f.burst - 1)
            state.count("server_errors")
            return Response("<html>bad gateway</html>", status_code=502, media_type="text/html")
        roll -= edges[1]
        if roll < edges[2]:
            state.count("timeouts")
            await asyncio.sleep(f.timeout_seconds)
            return _error(2001, "late")
        roll -= edges[2]
        if roll < edges[3]:
            state.count("malformed")
            return Response('{"code": 0, "data": {"fans": [', media_type="application/json")
        return None

    def authorised(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        value = header.removeprefix("Bearer ")
        left = state.tokens.get(value)
        if left is None or left == 0:
            state.count("token_rejected")
            return _error(1001, "access token expired")
        if left > 0:
            state.tokens[value] = left - 1
        return None

    def listing(kind: str, total: int, make: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            state.count(f"{kind}_requests")
            denied = authorised(request)
            if denied is not None:
                return denied
            fault = await faulted(request)
            if fault is not None:
                return fault
            cursor = request.query_params.get("cursor", "")
            offset = _cursor_offset(cursor)
            try:
                count = int(request.query_params.get("count", "100"))
            except ValueError:
                count = -1
            if offset < 0 or not 1 <= count <= 1000:
                return _error(4001, "bad cursor or count")
            f, rng = state.faults, state.rng
            if offset < total and rng.random() < f.empty:
                state.count("empty_pages")
                return JSONResponse({"code": 0, "data": {kind: [], "next_cursor": f"o{offset}.{rng.randrange(10**9)}"}})
            end = min(total, offset + count)
            items = [make(i) for i in range(offset, end)]
            if offset > 0 and rng.random() < f.duplicate:
                state.count("duplicate_pages")
                items = [make(i) for i in range(max(0, offset - 5), offset)] + items
            next_cursor = f"o{end}" if end < total else ""
            state.serve(kind, cursor)
            return JSONResponse({"code": 0, "data": {kind: items, "next_cursor": next_cursor}})

        return endpoint

    async def fan_detail(request: Request) -> Response:
        state.count("fan_detail_requests")
        denied = authorised(request)
        if denied is not None:
            return denied
        fault = await faulted(request)
        if fault is not None:
            return fault
        uid = request.path_params["uid"]
        index = int(uid.lstrip("u")) if uid.lstrip("u").isdigit() else -1
        if not 0 <= index < state.population.fans:
            return _error(4001, "no such fan")
        state.count("fan_detail_served")
        return JSONResponse({"code": 0, "data": state.population.fan(index)})

    async def push_card(request: Request) -> Response:
        denied = authorised(request)
        if denied is not None:
            return denied
        fault = await faulted(request)
        if fault is not None:
            return fault
        body = json.loads(await request.body())
        state.cards[body["card_no"]] = {"balance": body["balance"], "level": body["level"]}
        state.count("card_pushes")
        return JSONResponse({"code": 0, "revision": state.stats["card_pushes"]})

    async def cards(request: Request) -> Response:
        return JSONResponse(state.cards)

    async def set_faults(request: Request) -> Response:
        state.faults = Faults(**json.loads(await request.body()))
        return JSONResponse(asdict(state.faults))

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats)

    pop = state.population
    return Starlette(routes=[
        Route("/oauth/token", token, methods=["POST"]),
        Route("/v1/fans", listing("fans", pop.fans, pop.fan)),
        Route("/v1/fans/{uid}", fan_detail),
        Route("/v1/orders", listing("orders", pop.orders, pop.order)),
        Route("/v1/cards", push_card, methods=["POST"]),
        Route("/_admin/cards", cards),
        Route("/_admin/faults", set_faults, methods=["POST"]),
        Route("/_admin/stats", stats),
    ])


def account_settings(base_url: str, account_id: str = "main") -> dict[str, Any]:
    """The ``[[accounts]]`` entry that points at a sandbox running at ``base_url``."""
    return {"platform": "testplat", "id": account_id, "base_url": base_url,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


def signed_follow(uid: str, *, event_id: str | None = None, follow: bool = True, at: int | None = None) -> Any:
    """A correctly signed follow (or unfollow) callback, as the platform would deliver it."""
    from hub import WebhookRequest

    body = json.dumps({"event_id": event_id or secrets.token_hex(8), "type": "follow" if follow else "unfollow",
                       "uid": uid}).encode()
    timestamp = str(at if at is not None else int(time.time()))
    headers = {"content-type": "application/json", TIMESTAMP_HEADER: timestamp,
               SIGNATURE_HEADER: sign(CLIENT_SECRET, timestamp, body)}
    return WebhookRequest(method="POST", path="/", query={}, headers=headers, body=body)


def make_sandbox(seed: int, fans: int, base_url: str) -> Any:
    from hub import SandboxSpec

    return SandboxSpec(app=make_app(fans, seed=seed), account=account_settings(base_url),
                       sample_webhook=lambda: signed_follow("u0000001"))


def app_from_env() -> Starlette:
    """A uvicorn ``--factory`` entry: ``TESTPLAT_FANS`` and ``TESTPLAT_SEED`` size the population."""
    import os

    return make_app(int(os.environ.get("TESTPLAT_FANS", "1000")), seed=int(os.environ.get("TESTPLAT_SEED", "0")))
