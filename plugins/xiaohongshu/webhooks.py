"""Xiaohongshu message pushes: verify the header signature, then read the documented body.

A push (doc 41) is a ``POST`` to the one URL configured for the app, with headers ``app-key``,
``timestamp`` and ``sign`` (see :func:`plugins.xiaohongshu.wire.push_sign`), and a body that is a
JSON **array** of ``{"msgTag": str, "sellerId": str, "data": str}`` where ``data`` is itself a JSON
object in a string.  The answer is ``{"success": true, "error_code": 0, "error_msg": ""}``; a
failed push is retried once, five minutes later.

What the hub keeps.  The order and after-sale topics carry an order id, a status and a time,
but not the buyer or the amounts an order record needs, and the body is not signed: so a push
is never turned into records.  It is stored as a raw event (personal fields removed), which says
which orders changed; the next ``orders`` sync reads them from the API.  A re-delivery (the same
messages) has the same dedupe key and is stored once.

Refused with a 4xx, nothing stored: a method other than POST (405); a missing or wrong signature
or an ``app-key`` that is not the account's app (401); a body that is not the documented array, a
message whose ``data`` is not a JSON object, or one for a shop (``sellerId``) that is not this
account's when that is known (400).  The console's check sends ``{"test": true}``, answered
with the acknowledgement and not stored (without a signature too, unless the account turns that
off: whether the check is signed is not documented).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import hub
from plugins.xiaohongshu.mapping import strip_private
from plugins.xiaohongshu.wire import AFTER_SALE_TOPICS, ORDER_TOPICS, PUSH_ACK, push_signature_matches

__all__ = ["ACK", "parse_push", "verify_push"]

ACK = hub.WebhookResult(body=PUSH_ACK, media_type="application/json")
"""The acknowledgement of a push that stores nothing (the console's test)."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def verify_push(request: hub.WebhookRequest, *, app_key: str, app_secret: str, sign_path: str | None = None) -> None:
    """Reject ``request`` unless its ``sign`` header signs path, query, ``app-key`` and ``timestamp``.

    :param app_key: the app's key (``appId``); the ``app-key`` header must name it.
    :param app_secret: the app secret.
    :param sign_path: the path the platform signs, when it is not the path the request arrived at
        (a proxy in front of the hub); which path the platform signs is not documented.
    :raises hub.WebhookRejected: 401 for a missing or wrong signature or another app's key.
    """
    given_key = _header(request.headers, "app-key")
    timestamp = _header(request.headers, "timestamp")
    sign = _header(request.headers, "sign")
    if not given_key or not timestamp or not sign:
        raise hub.WebhookRejected("missing app-key, timestamp or sign header", status_code=401)
    if given_key != app_key:
        raise hub.WebhookRejected("the push names another app-key", status_code=401)
    path = sign_path or request.path
    if not push_signature_matches(path, dict(request.query), given_key, timestamp, app_secret, sign):
        raise hub.WebhookRejected("the push's sign does not match", status_code=401)


def _is_test(body: bytes) -> bool:
    try:
        return json.loads(body) == {"test": True}
    except (ValueError, UnicodeDecodeError):
        return False


def _messages(body: bytes, seller_ids: frozenset[str]) -> list[dict[str, Any]]:
    try:
        batch = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise hub.WebhookRejected("the body is not JSON", status_code=400) from None
    if not isinstance(batch, list) or not batch:
        raise hub.WebhookRejected("the body is not a non-empty array of messages", status_code=400)
    messages = []
    for index, item in enumerate(batch):
        if (not isinstance(item, dict) or set(item) != {"msgTag", "sellerId", "data"}
                or not all(isinstance(item[k], str) and item[k] for k in ("msgTag", "sellerId", "data"))):
            raise hub.WebhookRejected(f"message {index} is not {{msgTag, sellerId, data}} strings", status_code=400)
        if seller_ids and item["sellerId"] not in seller_ids:
            raise hub.WebhookRejected(f"message {index} is for another shop", status_code=400)
        try:
            data = json.loads(item["data"])
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise hub.WebhookRejected(f"message {index}: data is not a JSON object", status_code=400)
        messages.append({"msgTag": item["msgTag"], "sellerId": item["sellerId"], "data": data})
    return messages


def parse_push(request: hub.WebhookRequest, *, app_key: str, app_secret: str, seller_ids: frozenset[str] = frozenset(),
               sign_path: str | None = None, accept_unsigned_test: bool = True) -> hub.WebhookResult:
    """Verify one push, then make of it the raw event the hub stores (see the module docstring).

    :param request: the push as it arrived.
    :param app_key: the app's key (``appId``).
    :param app_secret: the app secret.
    :param seller_ids: the account's shop ids (``sellerId``) when known; other shops' messages
        are refused.
    :param sign_path: see :func:`verify_push`.
    :param accept_unsigned_test: answer an unsigned ``{"test": true}`` with the acknowledgement.
    :raises hub.WebhookRejected: see the module docstring.
    """
    if request.method.upper() != "POST":
        raise hub.WebhookRejected("Xiaohongshu pushes by POST", status_code=405)
    try:
        verify_push(request, app_key=app_key, app_secret=app_secret, sign_path=sign_path)
    except hub.WebhookRejected:
        if accept_unsigned_test and _is_test(request.body):
            return ACK
        raise
    if _is_test(request.body):
        return ACK
    messages = _messages(request.body, seller_ids)
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    orders = sorted({str(m["data"]["orderId"]) for m in messages
                     if m["msgTag"] in ORDER_TOPICS | AFTER_SALE_TOPICS and m["data"].get("orderId")})
    raw = {"messages": [{**m, "data": strip_private(m["data"])} for m in messages], "orders_changed": orders}
    return hub.WebhookResult(dedupe_key="sha256:" + hashlib.sha256(canonical).hexdigest(), raw=raw,
                             follow_up={"orders": orders} if orders else None,
                             body=PUSH_ACK, media_type="application/json")
