"""Kuaishou order-list items → canonical records (pure functions).

One element of ``open.order.cursor.list``'s ``data.orderList`` is ``{orderBaseInfo, orderItemInfo,
orderRefundList[], orderAddress, …}``.  What the hub takes from it:

* an :class:`schemas.Order`: ``oid``, the buyer's ``buyerOpenId``, the amount in fen
  (``totalFee``, optionally plus ``expressFee``), the status and the create / pay / refund times
  (epoch milliseconds);
* the buyer as a :class:`schemas.Fan`: ``buyerOpenId`` (unique within the developer entity),
  ``buyerNick`` and ``buyerImage``.

Status: 10 待付款 → created, 30 已付款 → paid, 40 已发货 and 50 已签收 → shipped, 70 订单成功 →
completed, 80 订单失败 → cancelled, or refunded when the order had been paid (a paid order that
closes has its money returned).  The order list has no order-level refunded status: a refund whose
``refundStatus`` is 60 (退款成功) makes the order refunded.  The list carries no refund amount, so a
successful refund counts as the whole order (see docs/platforms/kuaishou.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from schemas import OrderStatus, from_epoch_millis, normalise_phone

__all__ = [
    "AmountBasis",
    "ORDER_STATUSES",
    "REFUND_SUCCESS",
    "buyer_fields",
    "buyers",
    "order_fields",
    "phone_or_none",
]

AmountBasis = Literal["total_fee", "total_fee_with_express"]

ORDER_STATUSES: Mapping[int, OrderStatus] = {
    0: OrderStatus.CREATED,  # 未知
    10: OrderStatus.CREATED,  # 待付款
    30: OrderStatus.PAID,  # 已付款
    40: OrderStatus.SHIPPED,  # 已发货
    50: OrderStatus.SHIPPED,  # 已签收 (the hub has no "delivered")
    70: OrderStatus.COMPLETED,  # 订单成功
    80: OrderStatus.CANCELLED,  # 订单失败 (refunded instead when it had been paid)
}
CLOSED = 80
REFUND_SUCCESS = 60
"""``orderRefundList[].refundStatus`` of a refund that was paid out (退款成功)."""


def _int(value: Any) -> int:
    if value is None or value == "":
        return 0
    return int(value)


def _millis(value: Any) -> Any:
    millis = _int(value)
    return from_epoch_millis(millis) if millis > 0 else None


def order_fields(platform: str, account_id: str, item: Mapping[str, Any], *,
                 amount_basis: AmountBasis = "total_fee") -> dict[str, Any]:
    """The :class:`schemas.Order` fields of one order-list element.

    :param item: the element (``orderBaseInfo`` is required).
    :param amount_basis: ``total_fee`` (goods, without freight) or ``total_fee_with_express``.
    """
    base = item["orderBaseInfo"]
    amount = _int(base.get("totalFee"))
    if amount_basis == "total_fee_with_express":
        amount += _int(base.get("expressFee"))
    code = _int(base.get("status"))
    status = ORDER_STATUSES.get(code, OrderStatus.CREATED)
    paid_at = _millis(base.get("payTime"))
    refunds = item.get("orderRefundList") or item.get("orderDetailRefundList") or ()
    refunded = any(_int(r.get("refundStatus")) == REFUND_SUCCESS for r in refunds if isinstance(r, Mapping))
    refunded_at = None
    if refunded or (code == CLOSED and paid_at is not None):
        status = OrderStatus.REFUNDED
        refunded_at = _millis(base.get("refundTime")) or _millis(base.get("updateTime"))
    return {
        "platform": platform,
        "account_id": account_id,
        "order_id": str(base["oid"]),
        "buyer_uid": str(base["buyerOpenId"]),
        "amount_fen": amount,
        "refunded_fen": amount if status is OrderStatus.REFUNDED else 0,
        "status": status,
        "created_at": _millis(base.get("createTime")),
        "paid_at": paid_at,
        "refunded_at": refunded_at,
    }


def buyer_fields(platform: str, account_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`schemas.Fan` fields of an order's buyer (only what the order says)."""
    base = item["orderBaseInfo"]
    fields: dict[str, Any] = {"platform": platform, "account_id": account_id,
                              "platform_uid": str(base["buyerOpenId"])}
    if base.get("buyerNick"):
        fields["nickname"] = str(base["buyerNick"])
    if base.get("buyerImage"):
        fields["avatar_url"] = str(base["buyerImage"])
    return fields


def buyers(platform: str, account_id: str, items: Iterable[Mapping[str, Any]],
           phones: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The distinct buyers of a page of orders (the last order of a buyer wins), each with the
    decrypted phone numbers found for them.

    :param phones: order id → decrypted receiver phone (already valid numbers).
    """
    found: dict[str, dict[str, Any]] = {}
    numbers: dict[str, list[str]] = {}
    for item in items:
        fields = buyer_fields(platform, account_id, item)
        uid = fields["platform_uid"]
        found[uid] = fields
        number = (phones or {}).get(str(item["orderBaseInfo"]["oid"]))
        if number and number not in numbers.setdefault(uid, []):
            numbers[uid].append(number)
    for uid, fields in found.items():
        if numbers.get(uid):
            fields["other_phones"] = sorted(numbers[uid])
    return list(found.values())


def phone_or_none(value: Any) -> str | None:
    """A decrypted number in the hub's form, or ``None`` when it is not a whole mobile number
    (a masked ``138****0000``, an empty answer)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return normalise_phone(value)
    except ValueError:
        return None
