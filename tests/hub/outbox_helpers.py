"""A card-and-message platform for the outbox tests: adapter, recording sandbox, config.

``cardtest`` takes ``POST /card/update`` and ``POST /message/send`` (JSON) and answers
``{"code": 0, "accepted": true}``.  Faults on demand, per member id: ``down`` (HTTP 503, retried),
``reject`` (body code 4001, permanent) and ``refuse`` (``accepted: false``); ``hold`` parks the
push until the test releases it.

Run as a module it is ``siyu`` with this platform installed, for tests that kill a drainer:
``python -m tests.hub.outbox_helpers --config siyu.toml outbox drain``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import hub
from hub.config import parse_settings, read_toml
from hub.plugins import load_plugins
from schemas import Capability
from schemas.tables import OutboxRow, utcnow

PHONE_KEY = "test-phone-key-0123456789abcdef"
outbox = OutboxRow.__table__


class CardAdapter(hub.Adapter):
    platform = "cardtest"
    capabilities = frozenset({Capability.CARDS, Capability.MESSAGES})
    error_codes = {4001: hub.PermanentError}

    def error_code(self, response):
        code = response.json().get("code", 0)
        return None if code == 0 else (code, "card rejected")

    async def push_card(self, account, card):
        response = await self.client.post("/card/update", json={
            "member_id": card.member_id, "card_no": card.card_no, "balance": card.balance, "level": card.level})
        body = response.json()
        return hub.PushResult(accepted=body["accepted"], detail=body.get("detail"))

    async def send_message(self, account, message):
        response = await self.client.post("/message/send", json={
            "msg_id": message.platform_msg_id, "to": message.fan_uid, "text": message.body.get("text")})
        return hub.PushResult(accepted=response.json()["accepted"])


class CardPlugin:
    @hub.hookimpl
    def register_platforms(self, register):
        register(CardAdapter)


def make_host():
    return load_plugins(extra=[(CardPlugin(), "undo-cardtest")])


class CardSandbox:
    """The recording sandbox; ``pushes`` and ``messages`` list what arrived, in arrival order."""

    def __init__(self) -> None:
        self.pushes: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.faults: dict[int, str] = {}
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/card/update", self.card, methods=["POST"]),
                                     Route("/message/send", self.message, methods=["POST"])])

    def count(self, member_id: int) -> int:
        with self.lock:
            return sum(1 for p in self.pushes if p["member_id"] == member_id)

    async def card(self, request: Request) -> JSONResponse:
        data = await request.json()
        with self.lock:
            self.pushes.append(data)
        await asyncio.sleep(0.001)  # let concurrent drainers interleave
        fault = self.faults.get(data["member_id"])
        if fault == "hold":
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 60)
        if fault == "down":
            return JSONResponse({"code": 1, "msg": "busy"}, status_code=503)
        if fault == "reject":
            return JSONResponse({"code": 4001, "msg": "no such card"})
        if fault == "refuse":
            return JSONResponse({"code": 0, "accepted": False, "detail": "card frozen"})
        return JSONResponse({"code": 0, "accepted": True})

    async def message(self, request: Request) -> JSONResponse:
        data = await request.json()
        with self.lock:
            self.messages.append(data)
        await asyncio.sleep(0.001)
        return JSONResponse({"code": 0, "accepted": True})


def config(database_url: str, base_url: str) -> dict[str, Any]:
    return {
        "database": {"url": database_url},
        "security": {"phone_key": PHONE_KEY},
        "retry": {"attempts": 3, "initial_wait": 0, "max_wait": 0, "jitter": 0},
        "accounts": [{"platform": "cardtest", "id": "shop", "base_url": base_url}],
    }


def make_settings(host, database_url: str, base_url: str):
    return parse_settings(config(database_url, base_url), host)


def write_config(path: Path, database_url: str, base_url: str) -> Path:
    doc = config(database_url, base_url)
    path.write_text(
        f'[database]\nurl = "{database_url}"\n\n[security]\nphone_key = "{PHONE_KEY}"\n\n'
        "[retry]\nattempts = 3\ninitial_wait = 0\nmax_wait = 0\njitter = 0\n\n"
        f'[[accounts]]\nplatform = "cardtest"\nid = "shop"\nbase_url = "{base_url}"\n',
        encoding="utf-8",
    )
    assert read_toml(path) == doc
    return path


def card_item(member_id: int, balance: int, *, level: int = 0, target: str | None = None) -> dict[str, Any]:
    return {"kind": "card_update", "target": target or f"card:{member_id}",
            "payload": {"member_id": member_id, "card_no": f"NO{member_id}", "balance": balance, "level": level}}


def message_item(msg_id: str, conversation: str, text: str = "hi") -> dict[str, Any]:
    payload = {"platform": "cardtest", "account_id": "shop", "platform_msg_id": msg_id, "fan_uid": conversation,
               "direction": "outbound", "content_type": "text", "body": {"text": text},
               "sent_at": "2024-05-01T00:00:00Z"}
    return {"kind": "message", "target": f"conv:{conversation}", "payload": payload}


def insert(engine: sa.Engine, *items: dict[str, Any], **overrides: Any) -> list[int]:
    """Queue raw outbox rows (no superseding at insert time), returning their ids."""
    now = utcnow()
    ids = []
    with engine.begin() as conn:
        for item in items:
            values = {"platform": "cardtest", "account_id": "shop", "status": "pending", "attempts": 0,
                      "available_at": now, "inserted_at": now, "updated_at": now, **item, **overrides}
            ids.append(conn.execute(outbox.insert().values(**values).returning(outbox.c.id)).scalar_one())
    return ids


def statuses(engine: sa.Engine) -> dict[int, tuple[str, int, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox.c.id, outbox.c.status, outbox.c.attempts, outbox.c.last_error))
        return {r.id: (r.status, r.attempts, r.last_error) for r in rows}


if __name__ == "__main__":
    from hub.cli import build_app
    from hub.cli.context import Context

    context = Context()
    context._host = make_host()
    build_app(context)(args=sys.argv[1:], prog_name="siyu")
