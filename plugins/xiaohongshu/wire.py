"""Xiaohongshu's ark wire conventions as data and pure functions: the gateway, its methods, the
request signature, the response envelope, the order-list windows and the push signature.

Facts and their sources are in ``docs/platforms/xiaohongshu.md`` (from
``shared/platforms/alipay-kuaishou-xiaohongshu.md`` part 3 and §6.5–6.8).  In short:

* Every call is ``POST /ark/open_api/v3/common_controller`` with one flat JSON body: the system
  parameters ``appId``, ``method``, ``version`` ("2.0"), ``timestamp`` (Unix seconds), ``sign``,
  ``accessToken`` (merchant calls), then the method's business parameters.
* ``sign`` = lowercase hex MD5 of ``method?appId=…&timestamp=…&version=…`` followed directly by the
  app secret.  ``accessToken`` and business parameters are not signed.
* An answer succeeded when ``error_code == 0`` and ``success`` is true; some method families
  (``afterSale.listAfterSaleInfos``, ``afterSale.getAfterSaleInfo``, …) wrap their ``data`` in a
  second ``{code, msg, success, data}`` layer, which must succeed too.
* A push carries headers ``app-key``, ``timestamp`` and ``sign`` = MD5 of the URL path, ``?``, the
  URL's query parameters plus ``app-key`` and ``timestamp`` sorted by key and joined ``k=v&…``,
  followed by the app secret.  The body is not signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from hub import as_int

__all__ = [
    "AFTER_SALE_DONE",
    "AFTER_SALE_TOPICS",
    "DECRYPT_QUOTA_CODES",
    "ERROR_CODES",
    "GATEWAY_PATH",
    "METHODS",
    "ORDER_BY_UPDATE_TIME",
    "ORDER_TOPICS",
    "PAGE_NO_MAX",
    "PAGE_SIZE_MAX",
    "PUSH_ACK",
    "PUSH_HEADERS",
    "REFUND_SUCCEEDED",
    "TOPICS",
    "UPDATE_WINDOW_SECONDS",
    "VERSION",
    "as_int",
    "decode_cursor",
    "encode_cursor",
    "envelope_error",
    "push_sign",
    "push_sign_source",
    "push_signature_matches",
    "request_sign",
    "request_sign_source",
    "unwrap",
]

GATEWAY_PATH = "/ark/open_api/v3/common_controller"
"""The one URL path of every business and token call."""

VERSION = "2.0"
"""The ``version`` system parameter of the v3 gateway."""

METHODS = {
    "get_token": "oauth.getAccessToken",
    "refresh_token": "oauth.refreshToken",
    "order_list": "order.getOrderList",
    "order_detail": "order.getOrderDetail",
    "receiver_info": "order.getOrderReceiverInfo",
    "decrypt": "data.batchDecrypt",
    "after_sale_list": "afterSale.listAfterSaleInfos",
    "after_sale_info": "afterSale.getAfterSaleInfo",
}
"""The ``method`` names the plugin calls."""

UPDATE_WINDOW_SECONDS = 30 * 60
"""``order.getOrderList`` with ``timeType=2`` (update time): ``endTime − startTime`` ≤ 30 minutes."""

PAGE_SIZE_MAX = 100
"""``pageSize`` ≤ 100 (order list, after-sale list)."""

PAGE_NO_MAX = 100
"""``pageNo`` ≤ 100 on the order list: at most 10,000 orders per window."""

ORDER_BY_UPDATE_TIME = 2
"""``timeType`` 2: the window is on the orders' update time (pages read last to first)."""

AFTER_SALE_DONE = 3
"""``orderAfterSalesStatus`` 3 售后完成."""

REFUND_SUCCEEDED = 2
"""``refundStatus`` 2 退款成功 of ``afterSale.getAfterSaleInfo``."""

DECRYPT_QUOTA_CODES = frozenset({-2000701, -2000702})
"""Per-item ``errorCode`` of ``data.batchDecrypt``: the shop's decrypt quota is spent (or its check
failed); no more decrypting today."""

ORDER_TOPICS = frozenset({
    "msg_fulfillment_status_change",
    "msg_fulfillment_receiver_change",
    "msg_fulfillment_seller_remark_change",
    "msg_fulfillment_delivery_time_change",
})
"""Push topics about an order: the next orders sync fetches it."""

AFTER_SALE_TOPICS = frozenset({
    "msg_after_sale_create", "msg_after_sale_transfer", "msg_after_sale_update", "msg_after_sale_audit_pass",
    "msg_after_sale_audit_reject", "msg_after_sale_reject_receive", "msg_after_sale_exchange_ship",
    "msg_after_sale_closed", "msg_after_sale_confirm_receive", "msg_after_sale_refund_finished",
})
"""After-sale topics (doc 41 lists only create and transfer; the rest come from later sources)."""

TOPICS = ORDER_TOPICS | AFTER_SALE_TOPICS | {"msg_item_create", "msg_item_buyable", "msg_item_audit_reject"}
"""Every topic the sources name."""

PUSH_HEADERS = ("app-key", "timestamp", "sign")
"""The push's signature headers (kebab-case)."""

PUSH_ACK = b'{"success": true, "error_code": 0, "error_msg": ""}'
"""The documented answer to a push."""

ERROR_CODES: dict[int, Any] = {}
"""Gateway body codes → hub errors.

Empty on purpose: no public gateway error table was found (``errorcodeNew`` returns ``[]``), and
the codes seen in the method docs (``-1010001`` …) are business refusals, which the hub treats as
permanent anyway.  The codes for an expired token or a throttled call are unknown: an account
adds them with ``extra_error_codes`` (see the docs).  A 429 is rate-limited and a 5xx transient
whatever the body."""


def request_sign_source(method: str, app_id: str, timestamp: int | str, version: str, app_secret: str) -> str:
    """The string a request's ``sign`` is the MD5 of (it contains the secret: never log it)."""
    return f"{method}?appId={app_id}&timestamp={timestamp}&version={version}{app_secret}"


def request_sign(method: str, app_id: str, timestamp: int | str, version: str, app_secret: str) -> str:
    """A gateway request's ``sign``: lowercase hex MD5 of :func:`request_sign_source`.

    :param method: the ``method`` system parameter (``order.getOrderList``).
    :param app_id: the ``appId``.
    :param timestamp: the ``timestamp`` exactly as sent (Unix seconds).
    :param version: the ``version`` exactly as sent (``"2.0"``).
    :param app_secret: the app secret.
    """
    source = request_sign_source(method, app_id, timestamp, version, app_secret)
    return hashlib.md5(source.encode()).hexdigest()  # noqa: S324 - the platform's scheme


def push_sign_source(path: str, query: Mapping[str, str], app_key: str, timestamp: str, app_secret: str) -> str:
    """The string a push's ``sign`` is the MD5 of: path, ``?``, the query parameters plus
    ``app-key`` and ``timestamp`` sorted by key and joined ``k=v&…``, then the secret."""
    params = {**query, "app-key": app_key, "timestamp": timestamp}
    joined = "&".join(f"{key}={params[key]}" for key in sorted(params))
    return f"{path}?{joined}{app_secret}"


def push_sign(path: str, query: Mapping[str, str], app_key: str, timestamp: str, app_secret: str) -> str:
    """A push's ``sign`` header: lowercase hex MD5 of :func:`push_sign_source`."""
    source = push_sign_source(path, query, app_key, timestamp, app_secret)
    return hashlib.md5(source.encode()).hexdigest()  # noqa: S324 - the platform's scheme


def push_signature_matches(path: str, query: Mapping[str, str], app_key: str, timestamp: str, app_secret: str,
                           sign: str | None) -> bool:
    """Whether ``sign`` signs the push, compared in constant time (hex case ignored)."""
    if not sign:
        return False
    expected = push_sign(path, query, app_key, timestamp, app_secret).encode()
    return hmac.compare_digest(expected, sign.strip().lower().encode("ascii", "replace"))


def _failed(section: Mapping[str, Any], code_key: str, message_key: str) -> tuple[int, str] | None:
    try:
        code = as_int(section.get(code_key))
    except ValueError:
        code = -1
    if code == 0 and section.get("success") is True:
        return None
    return (code or -1), str(section.get(message_key) or "")


def envelope_error(body: Any) -> tuple[int, str] | None:
    """The ``(code, message)`` of a failed answer, or ``None`` when it succeeded.

    The gateway layer first (``error_code``, ``success``, ``error_msg``), then the inner
    ``{code, msg, success}`` layer of the method families that have one (``data`` holding a
    ``success`` flag).  A failure without a code is reported as ``-1``.

    :param body: the parsed JSON body.
    """
    if not isinstance(body, Mapping):
        return (-1, "the answer is not a JSON object")
    failed = _failed(body, "error_code", "error_msg")
    if failed is not None:
        return failed
    inner = body.get("data")
    if isinstance(inner, Mapping) and "success" in inner:
        return _failed(inner, "code", "msg")
    return None


def unwrap(body: Mapping[str, Any]) -> dict[str, Any]:
    """The business ``data`` of a successful answer (inside the inner layer where there is one)."""
    data = body.get("data")
    if isinstance(data, Mapping) and "success" in data:
        data = data.get("data")
    return dict(data) if isinstance(data, Mapping) else {}


def encode_cursor(start: int, end: int, page: int) -> str:
    """A paged read's position: the window ``[start, end]`` (Unix seconds of update time) and the
    next page to read in it (0: the window is still to be probed for its ``maxPageNo``)."""
    return f"{start}:{end}:{page}"


def decode_cursor(cursor: str) -> tuple[int, int, int]:
    """``(start, end, page)`` of :func:`encode_cursor`.

    :raises ValueError: for a cursor this plugin did not write.
    """
    parts = cursor.split(":")
    if len(parts) != 3:
        raise ValueError("not a Xiaohongshu order-window cursor")
    start, end, page = (int(p) for p in parts)
    if not (0 <= start < end and end - start <= UPDATE_WINDOW_SECONDS and 0 <= page <= PAGE_NO_MAX):
        raise ValueError("not a Xiaohongshu order-window cursor")
    return start, end, page
