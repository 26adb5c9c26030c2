"""The Xiaohongshu sandbox's shop: buyers, orders and after-sales, generated from a seed.

The same ``seed`` and ``fans`` give the same shop.  Each of ``fans`` buyers has one order, and
every third buyer a second one; orders were last updated within the ``span_hours`` before the
moment the shop is made (in milliseconds, as the platform writes times).  A few orders are
unpaid or cancelled, some await shipment (their receiver can be read and decrypted), some have
a finished after-sale with a partial refund, some were closed after a full refund.

Given shared people (a :class:`hub.Population`), the buyers are the people who bought in the
Xiaohongshu shop, each placing ``xiaohongshu_orders`` orders; for those with
``xiaohongshu_phone`` the first order awaits shipment and its receiver mobile is the person's.
Other orders awaiting shipment then show no receiver mobile (a receiver is not always the buyer).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import hub

__all__ = ["AfterSale", "Shop", "make_shop", "order_id", "seller_id", "user_id"]

HOUR_MS = 3_600_000


def seller_id(seed: int) -> str:
    """The shop's ``sellerId`` (24 hex digits)."""
    return f"5f{seed:06x}{'a' * 16}"


def user_id(seed: int, i: int) -> str:
    """The ``userId`` of buyer ``i``."""
    return f"60{seed:04x}{i:018x}"


def order_id(seed: int, n: int) -> str:
    """The ``orderId`` of order ``n`` (``P`` and 18 digits)."""
    return f"P{seed % 1000:03d}{n:015d}"


@dataclass
class AfterSale:
    """One after-sale of an order, as ``afterSale.getAfterSaleInfo`` describes it."""

    returns_id: str
    order_id: str
    user_id: str
    refund_yuan: str
    status: int = 4
    refund_status: int = 2
    applied_ms: int = 0
    updated_ms: int = 0


@dataclass
class Shop:
    """The generated shop: orders by id (detail fields), after-sales by order id, phones."""

    seller: str
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    after_sales: dict[str, list[AfterSale]] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    """The receiver mobile of orders awaiting shipment, by order id."""


def _order(rng: random.Random, seed: int, n: int, buyer: int, now_ms: int, span_ms: int,
           status: int | None = None) -> dict[str, Any]:
    updated = now_ms - rng.randrange(60_000, span_ms)
    created = updated - rng.randrange(0, 3 * HOUR_MS)
    roll = rng.random()
    if status is None:
        status = 7 if roll < 0.55 else 4 if roll < 0.7 else 6 if roll < 0.8 else 1 if roll < 0.86 else 9 if roll < 0.9 else 8
    paid = status not in (1, 9)
    goods = rng.randrange(990, 59_900)
    freight = rng.choice((0, 0, 600, 1000))
    return {
        "orderId": order_id(seed, n), "orderType": 1, "orderStatus": status, "orderAfterSalesStatus": 1,
        "cancelStatus": 0, "createdTime": created, "paidTime": created + 30_000 if paid else 0,
        "updateTime": updated, "deliveryTime": 0, "cancelTime": updated if status == 9 else 0,
        "finishTime": updated if status == 7 else 0, "promiseLastDeliveryTime": created + 48 * HOUR_MS,
        "receiverProvinceName": "上海", "receiverCityName": "上海市", "receiverDistrictName": "黄浦区",
        "customerRemark": "", "sellerRemark": "", "sellerRemarkFlag": 1, "logistics": "red_express",
        "userId": user_id(seed, buyer), "openAddressId": f"oa{n:08d}",
        "totalPayAmount": goods + freight if paid else 0, "totalShippingFree": freight if paid else 0,
        "merchantActualReceiveAmount": goods + freight if paid else 0, "paymentType": rng.choice((1, 2)),
        "shopId": "shop", "shopName": "沙盒小店",
        "skuList": [{"skuId": f"sku{n % 17}", "itemId": f"item{n % 17}", "skuName": "沙盒商品", "skuQuantity": 1,
                     "totalPaidAmount": goods if paid else 0, "skuAfterSaleStatus": 1, "skuTag": 0}],
    }


def make_shop(seed: int, fans: int, now_ms: int, span_hours: float = 24.0, people: hub.Population | None = None) -> Shop:
    """The shop of ``fans`` buyers, or of the buyers among shared ``people`` (see the module docstring)."""
    rng = random.Random(seed)
    shop = Shop(seller=seller_id(seed))
    span = max(int(span_hours * HOUR_MS), 120_000)
    n = 0
    if people is None:
        plan = [(buyer, 2 if buyer % 3 == 0 else 1, f"13{(seed * 7919 + buyer) % 10**9:09d}", False)
                for buyer in range(fans)]
    else:
        plan = [(p.index, p.xiaohongshu_orders, p.mobile if p.xiaohongshu_phone else None, p.xiaohongshu_phone)
                for p in people if p.xiaohongshu_orders]
    for buyer, count, phone, awaits in plan:
        for k in range(count):
            n += 1
            order = _order(rng, seed, n, buyer, now_ms, span, 4 if awaits and k == 0 else None)
            shop.orders[order["orderId"]] = order
            if order["orderStatus"] == 4 and phone:
                shop.phones[order["orderId"]] = phone
            if order["orderStatus"] in (6, 7) and n % 7 == 0:
                refund = order["totalPayAmount"] // 3
                order["orderAfterSalesStatus"] = 3
                shop.after_sales[order["orderId"]] = [AfterSale(
                    returns_id=f"R{n:012d}", order_id=order["orderId"], user_id=order["userId"],
                    refund_yuan=f"{refund / 100:.2f}", applied_ms=order["updateTime"] - 60_000,
                    updated_ms=order["updateTime"])]
    return shop
