"""The demo's member cards: given on WeCom, queued again, and read back from each sandbox.

Each sandbox keeps the member cards the hub pushed to it and shows them on an admin route that
is not the platform's (``/_admin/...``); :func:`read_back` reads them and compares each card's
balance with the ledger's balance of its member (the survivor, when merged).  Readers exist for
the built-in platforms with cards; a card on any other platform is counted as not read back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import sqlalchemy as sa

from hub.config import Settings
from hub.ledger.cards import enqueue_many
from hub.sync.store import upsert
from schemas import CardStatus, Fan
from schemas.tables import FanRow, MemberCardRow, MemberRow

__all__ = ["READERS", "give_wecom_cards", "queue_every_card", "read_back"]

fans = FanRow.__table__
cards = MemberCardRow.__table__
members = MemberRow.__table__
SAMPLE = 3


def _number(value: Any) -> int | None:
    try:
        return round(float(value))
    except (TypeError, ValueError):
        return None


def _alipay(client: httpx.Client, base_url: str) -> dict[str, int | None]:
    """Alipay: ``GET /_admin/cards`` → ``{biz_card_no: {"point": "120", ...}}``."""
    shown = client.get(f"{base_url}/_admin/cards").json()
    return {no: _number(card.get("point")) for no, card in shown.items() if card.get("status") == "ACTIVE"}


def _douyin(client: httpx.Client, base_url: str) -> dict[str, int | None]:
    """Douyin 来客: ``GET /_admin/members`` → ``{"members": {open_id: {"points_amount_cent"}}}``."""
    shown = client.get(f"{base_url}/_admin/members").json()["members"]
    return {uid: (None if m.get("points_amount_cent") is None else int(m["points_amount_cent"]) // 100)
            for uid, m in shown.items()}


def _wecom(client: httpx.Client, base_url: str) -> dict[str, int | None]:
    """WeCom's 公众号 card: ``GET /_admin/cards`` → ``{code: {"bonus": 120, ...}}``."""
    shown = client.get(f"{base_url}/_admin/cards").json()
    return {code: _number(card.get("bonus")) for code, card in shown.items()}


READERS: Mapping[str, Callable[[httpx.Client, str], dict[str, int | None]]] = {
    "alipay": _alipay, "douyin": _douyin, "wecom": _wecom}
"""Platform → a reader of its sandbox's cards: ``{card_no: balance shown}``."""


def wecom_card_code(uid: str) -> str:
    """A 12-digit card code for a WeCom customer (deterministic, so a second run gives the same)."""
    return str(int(hashlib.sha256(uid.encode()).hexdigest(), 16) % 10**12).zfill(12)


def give_wecom_cards(engine: sa.Engine, settings: Settings) -> int:
    """Record a 公众号 card code on every WeCom customer recognised on another platform too.

    WeCom itself tells the hub of no card (the 公众号's card events do not reach the WeCom
    plugin), so the demo plays the brand's import of its card holders: a fan record carrying
    ``card_no`` and ``card_status``, written through the store like any callback; ``apply`` then
    makes it the member's card.  Returns how many fans it wrote (unchanged ones included).
    """
    other = fans.alias("other")
    elsewhere = sa.exists().where(other.c.member_id == fans.c.member_id, other.c.platform != "wecom")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(fans.c.account_id, fans.c.platform_uid).where(
            fans.c.platform == "wecom", fans.c.member_id.is_not(None), elsewhere).order_by(fans.c.id)).all()
    records = [Fan(platform="wecom", account_id=r.account_id, platform_uid=r.platform_uid,
                   card_no=wecom_card_code(r.platform_uid), card_status=CardStatus.ACTIVE) for r in rows]
    for start in range(0, len(records), 500):
        with engine.begin() as conn:
            upsert(conn, records[start:start + 500], settings.phones)
    return len(records)


def _live_cards(conn: sa.Connection) -> list[Any]:
    survivor = members.alias("survivor")
    owner = members.alias("owner")
    return conn.execute(
        sa.select(cards.c.platform, cards.c.account_id, cards.c.card_no,
                  sa.func.coalesce(survivor.c.member_id, owner.c.member_id).label("member_id"),
                  sa.func.coalesce(survivor.c.balance, owner.c.balance).label("balance"),
                  sa.func.coalesce(survivor.c.level, owner.c.level).label("level"))
        .select_from(cards.join(owner, owner.c.member_id == cards.c.member_id)
                     .outerjoin(survivor, survivor.c.member_id == owner.c.merged_into))
        .where(cards.c.status == "active")
        .order_by(cards.c.platform, cards.c.account_id, cards.c.id)
    ).all()


def queue_every_card(engine: sa.Engine) -> int:
    """Queue one card update per active card with its member's balance now.

    A sandbox starts empty on every run, so the cards a previous run pushed are gone from it;
    a newer update supersedes any older pending one of the same card.  Returns how many.
    """
    with engine.begin() as conn:
        changed = {r.member_id: (int(r.balance), int(r.level)) for r in _live_cards(conn)}
        return enqueue_many(conn, changed)


def read_back(engine: sa.Engine, sandboxes: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every active card, read back from its platform's sandbox and compared with the ledger.

    :param sandboxes: platform → the base URL its sandbox listens on.
    :return: per platform: ``cards``, ``read_back`` (shown by the sandbox), ``in_step`` (shown
        and equal to the member's balance) and a few ``sample`` cards, each with ``in_step``.
    """
    with engine.connect() as conn:
        held = _live_cards(conn)
    out: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=30) as client:
        shown_by = {p: READERS[p](client, url) for p, url in sandboxes.items() if p in READERS}
    for card in held:
        shown = shown_by.get(card.platform, {}).get(card.card_no or "")
        entry = out.setdefault(card.platform, {"cards": 0, "read_back": 0, "in_step": 0, "sample": []})
        entry["cards"] += 1
        entry["read_back"] += shown is not None
        step = shown is not None and shown == card.balance
        entry["in_step"] += step
        if len(entry["sample"]) < SAMPLE:
            entry["sample"].append({"member_id": card.member_id, "account_id": card.account_id,
                                    "ledger_balance": int(card.balance), "shown": shown, "in_step": step})
    for entry in out.values():
        entry["all_in_step"] = entry["cards"] > 0 and entry["in_step"] == entry["cards"]
    return out
