"""testplat JSON → canonical records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas import Fan, Order, from_epoch_millis, from_epoch_seconds

__all__ = ["PLATFORM", "fans_from", "orders_from"]

PLATFORM = "testplat"


def fans_from(account_id: str, items: Iterable[Mapping[str, Any]]) -> list[Fan]:
    """A page of fans, validated in one call."""
    return Fan.many(
        {
            "platform": PLATFORM,
            "account_id": account_id,
            "platform_uid": item["uid"],
            "nickname": item["nickname"],
            "union_id": item.get("union_id"),
            "phone": item.get("mobile"),
            "follow_state": "following" if item["following"] else "unfollowed",
            "followed_at": from_epoch_seconds(item["follow_time"]),
            "interactions": {"messages": item["messages"]},
        }
        for item in items
    )


def orders_from(account_id: str, items: Iterable[Mapping[str, Any]]) -> list[Order]:
    return [
        Order(
            platform=PLATFORM,
            account_id=account_id,
            order_id=item["order_id"],
            buyer_uid=item["buyer_uid"],
            amount_fen=int(item["amount_fen"]),
            status=item["status"],
            paid_at=from_epoch_millis(item["paid_ms"]),
        )
        for item in items
    ]


def follow_event(account_id: str, event: Mapping[str, Any]) -> Fan:
    """A follow or unfollow callback's fan."""
    return Fan(platform=PLATFORM, account_id=account_id, platform_uid=event["uid"],
               follow_state="following" if event["type"] == "follow" else "unfollowed")
