"""Xiaohongshu JSON → canonical records, as pure functions.

An order comes from ``order.getOrderDetail`` (the list has neither the buyer nor the amounts):

* ``order_id`` = ``orderId``; ``buyer_uid`` = ``userId`` (the only buyer id in the order APIs);
* ``amount_fen`` = ``totalPayAmount − totalShippingFree`` (fen; the paid amount includes freight,
  which earns nothing);
* ``status`` from ``orderStatus`` (1 待付款 → created; 2 已支付处理中, 3 清关中, 4 待发货, 5 部分发货 →
  paid; 6 待收货, 10 换货申请中 → shipped; 7 已完成 → completed; 8 已关闭 and 9 已取消 → refunded when
  the order was paid, else cancelled);
* ``refunded_fen``: the sum of ``refundAmountYuan`` (元) of the order's after-sales whose
  ``refundStatus`` is 2 退款成功, capped at the amount; the whole amount for a paid order that was
  closed or cancelled;
* times from the millisecond fields ``createdTime``, ``paidTime`` and (for a refund) ``updateTime``.

A buyer becomes a fan keyed by ``userId``; a receiver's phone, when decrypted, is kept only as
an identity key (``Fan.other_phones``: a keyed hash), because the receiver need not be the buyer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from plugins.xiaohongshu.wire import REFUND_SUCCEEDED, as_int
from schemas import Fan, Order, OrderStatus, from_epoch_millis

__all__ = ["ENDED", "PRIVATE_KEYS", "buyer_fans", "mainland_mobile", "order_status", "refunded_fen", "strip_private",
           "to_orders", "yuan_to_fen"]

STATUSES = {
    1: OrderStatus.CREATED,
    2: OrderStatus.PAID, 3: OrderStatus.PAID, 4: OrderStatus.PAID, 5: OrderStatus.PAID,
    6: OrderStatus.SHIPPED, 10: OrderStatus.SHIPPED,
    7: OrderStatus.COMPLETED,
}
ENDED = frozenset({8, 9})
"""已关闭 / 已取消: the money went back when the order had been paid."""

PRIVATE_KEYS = re.compile(r"phone|mobile|receiver|name|address|idcard|email", re.IGNORECASE)
"""Keys of pushed data that may hold personal data: never stored with a raw event."""

_MOBILE = re.compile(r"^(?:\+?86)?(1\d{10})$")


def yuan_to_fen(value: Any) -> int:
    """An amount in 元 (number or string) as whole fen, rounded half up; 0 when absent.

    :raises ValueError: for a value that is not an amount.
    """
    if value is None or value == "":
        return 0
    try:
        return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        raise ValueError("not an amount") from None


def refunded_fen(after_sales: Iterable[Mapping[str, Any]]) -> int:
    """What an order's after-sales refunded, in fen: ``refundAmountYuan`` of those whose
    ``refundStatus`` is 2 (退款成功).

    :param after_sales: ``afterSaleInfo`` objects of ``afterSale.getAfterSaleInfo``.
    """
    return sum(yuan_to_fen(info.get("refundAmountYuan")) for info in after_sales
               if as_int(info.get("refundStatus"), default=-1) == REFUND_SUCCEEDED)


def order_status(code: int, *, paid: bool, amount: int, refunded: int) -> tuple[OrderStatus, int]:
    """The canonical status of an ``orderStatus`` and the refunded fen it implies.

    :param code: ``orderStatus``.
    :param paid: whether the order was ever paid (``paidTime`` set).
    :param amount: the order's amount in fen.
    :param refunded: what its after-sales refunded, in fen.
    :raises ValueError: for a status the documentation does not list.
    """
    if code in ENDED:
        return (OrderStatus.REFUNDED, amount) if paid else (OrderStatus.CANCELLED, 0)
    try:
        status = STATUSES[code]
    except KeyError:
        raise ValueError(f"unknown orderStatus {code}") from None
    refunded = min(refunded, amount)
    if status is not OrderStatus.CREATED and refunded > 0:
        return (OrderStatus.REFUNDED if refunded >= amount else OrderStatus.PARTIALLY_REFUNDED), refunded
    return status, 0


def _time(value: Any) -> Any:
    millis = as_int(value, default=0)
    return from_epoch_millis(millis) if millis > 0 else None


def to_orders(platform: str, account_id: str, details: Iterable[Mapping[str, Any]],
              refunds: Mapping[str, int]) -> tuple[list[Order], list[str]]:
    """Canonical orders from ``order.getOrderDetail`` answers, and the ids of the orders skipped
    because their ``orderStatus`` is not documented (a new status must not block the stream).

    :param details: the ``data`` of each detail answer.
    :param refunds: fen refunded per ``orderId`` (from the after-sale APIs); absent means none.
    :raises ValueError: (or :class:`pydantic.ValidationError`) for a detail that is not one.
    """
    values, skipped = [], []
    for detail in details:
        order_id = str(detail["orderId"])
        amount = max(0, as_int(detail.get("totalPayAmount")) - as_int(detail.get("totalShippingFree")))
        paid_at = _time(detail.get("paidTime"))
        code = as_int(detail.get("orderStatus"))
        if code not in STATUSES and code not in ENDED:
            skipped.append(order_id)
            continue
        status, refunded = order_status(code, paid=paid_at is not None, amount=amount,
                                        refunded=refunds.get(order_id, 0))
        values.append({
            "platform": platform, "account_id": account_id, "order_id": order_id,
            "buyer_uid": str(detail["userId"]), "amount_fen": amount, "refunded_fen": refunded, "status": status,
            "created_at": _time(detail.get("createdTime")), "paid_at": paid_at,
            "refunded_at": _time(detail.get("updateTime")) if refunded else None,
        })
    return Order.many(values), skipped


def mainland_mobile(value: Any) -> str | None:
    """A decrypted receiver phone as an 11-digit mainland mobile, or ``None`` (a landline, a
    privacy number ``18000000000-9999``, anything else is not an identity)."""
    if not isinstance(value, str):
        return None
    match = _MOBILE.match(value.replace(" ", ""))
    return match.group(1) if match else None


def buyer_fans(platform: str, account_id: str, details: Iterable[Mapping[str, Any]],
               phones: Mapping[str, str]) -> list[Fan]:
    """One fan per buyer (``userId``) of ``details``, in first-seen order.

    :param phones: a decrypted receiver mobile per ``orderId``; kept as an identity key only.
    """
    seen: dict[str, dict[str, Any]] = {}
    for detail in details:
        uid = str(detail["userId"])
        fan = seen.setdefault(uid, {"platform": platform, "account_id": account_id, "platform_uid": uid})
        phone = phones.get(str(detail.get("orderId")))
        if phone:
            fan.setdefault("other_phones", [])
            if phone not in fan["other_phones"]:
                fan["other_phones"].append(phone)
    return Fan.many(seen.values())


def strip_private(data: Any) -> Any:
    """``data`` without the keys that may hold personal data (at any depth)."""
    if isinstance(data, Mapping):
        return {k: strip_private(v) for k, v in data.items() if not PRIVATE_KEYS.search(str(k))}
    if isinstance(data, list):
        return [strip_private(v) for v in data]
    return data
