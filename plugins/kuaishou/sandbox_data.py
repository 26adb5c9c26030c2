"""The Kuaishou sandbox's shop: buyers and their orders, generated from a seed.

Every buyer has one to three orders, updated within the 80 days before the day the sandbox started, in a
mix of statuses (待付款, 已付款, 已发货, 已签收, 订单成功, 订单失败 before and after payment) and
some successful refunds.  Some orders carry a receiver phone, encrypted as the shop's data is.
The same seed and size give the same shop.

Given shared people (a :class:`hub.Population`), the buyers are the people who bought in the
Kuaishou shop, buyer ``index + 1`` placing the person's ``kuaishou_orders`` orders, each with the
person's phone as the encrypted receiver mobile when ``kuaishou_phone``; nicknames are the
people's names.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import hub

__all__ = ["DAY_MS", "Shop", "buyer_id", "generate"]

DAY_MS = 86_400_000
SPREAD_DAYS = 80
"""Orders are updated within this many days before the sandbox's start."""

STATUSES = ((10, 5), (30, 20), (40, 15), (50, 10), (70, 40), (80, 10))
"""(status, weight): 待付款, 已付款, 已发货, 已签收, 订单成功, 订单失败."""


def buyer_id(seed: int, i: int) -> str:
    """A buyer's ``buyerOpenId`` (Kuaishou's are opaque strings)."""
    return f"f18{seed:02d}{i:07d}" + hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:10]


@dataclass
class Shop:
    """The shop's orders by ``oid`` and the receiver phones behind their ciphertexts."""

    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    """ciphertext → phone number."""
    next_oid: int = 0


def _cipher(seed: int, phone: str) -> str:
    return "#" + hashlib.sha256(f"ks-cipher:{seed}:{phone}".encode()).hexdigest()[:24] + "#"


def _order(rng: random.Random, seed: int, oid: int, buyer: int, start_ms: int, nick: str | None = None) -> dict[str, Any]:
    status = rng.choices([s for s, _ in STATUSES], weights=[w for _, w in STATUSES])[0]
    created = start_ms - rng.randint(DAY_MS // 2, SPREAD_DAYS * DAY_MS)
    paid = status in (30, 40, 50, 70) or (status == 80 and rng.random() < 0.5)
    updated = min(created + rng.randint(60_000, 2 * DAY_MS), start_ms - 60_000)
    refunds = []
    if status == 70 and rng.random() < 0.1:
        refunds = [{"refundId": oid * 10 + 1, "refundStatus": 60}]
    return {
        "orderBaseInfo": {
            "oid": oid, "buyerOpenId": buyer_id(seed, buyer), "buyerNick": nick or f"快手买家{buyer}",
            "buyerImage": f"https://p.kuaishou.example/avatar/{buyer}.jpg", "sellerOpenId": f"seller-{seed}",
            "status": status, "createTime": created, "payTime": created + 60_000 if paid else 0,
            "updateTime": updated, "refundTime": updated if refunds else 0,
            "totalFee": rng.randint(1, 500) * 100 + rng.choice((0, 50, 99)),
            "expressFee": rng.choice((0, 0, 800)), "discountFee": 0, "payType": 1 if paid else 0,
        },
        "orderItemInfo": {"itemId": 30000 + buyer % 50, "num": 1},
        "orderRefundList": refunds,
        "orderAddress": {},
    }


def _own_buyers(seed: int, buyers: int) -> list[tuple[int, str | None, int | None, str | None]]:
    # (buyer, receiver phone, orders (None: drawn in turn), nickname)
    return [(buyer, f"139{seed % 100:02d}{buyer:06d}" if buyer % 3 == 0 else None, None, None)
            for buyer in range(1, buyers + 1)]


def generate(seed: int, buyers: int, start_ms: int, people: hub.Population | None = None) -> Shop:
    """The shop of ``buyers`` buyers as it was at ``start_ms`` (epoch milliseconds), or of the
    buyers among shared ``people``."""
    rng = random.Random(seed)
    shop = Shop(next_oid=2_100_000_000_000 + seed * 10_000_000)
    if people is None:
        plan = _own_buyers(seed, buyers)
    else:
        plan = [(p.index + 1, p.mobile if p.kuaishou_phone else None, p.kuaishou_orders, p.name)
                for p in people if p.kuaishou_orders]
    for buyer, phone, count, nick in plan:
        for _ in range(rng.choice((1, 1, 2, 3)) if count is None else count):
            oid = shop.next_oid = shop.next_oid + 1
            order = _order(rng, seed, oid, buyer, start_ms, nick)
            if phone:
                cipher = _cipher(seed, phone)
                shop.phones[cipher] = phone
                order["orderAddress"] = {"encryptedMobile": cipher}
            shop.orders[oid] = order
    return shop
