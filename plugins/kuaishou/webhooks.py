"""Kuaishou message pushes (消息服务): decrypt, check, parse, acknowledge.

A push is ``POST`` with ``text/plain`` whose body is Base64 of AES/CBC/PKCS5 ciphertext (zero IV,
the per-app message key).  The plaintext is UTF-8 JSON ``{eventId, bizId, userId, openId, appKey,
event, info, createTime, test}`` whose ``info`` is a JSON *string*, parsed a second time.  The
platform wants HTTP 200 with ``{"result":1}`` within 3 seconds and delivers at least once (five
retries), so a push is stored under its ``eventId`` and a re-delivery is acknowledged without
being stored again.  There is no signature: a body that does not decrypt with the app's key, or
that names another app, is refused.

====================================  =====================================================
push                                  what the hub gets
====================================  =====================================================
``{"test":true}`` (plain or inside)   acknowledged; nothing stored (console test, heartbeat)
``kwaishop_order_*``                  the buyer as a :class:`schemas.Fan` (``buyerOpenId``);
                                      the event kept as ``raw``: the push carries no amount,
                                      so the order itself arrives with the next orders sync
``kwaishop_aftersales_*`` and others  the event kept as ``raw`` (the next sync reads the order)
====================================  =====================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import hub
from hub import as_int
from plugins.kuaishou.wire import ACK, decrypt_push
from schemas import Account, Fan

__all__ = ["ORDER_EVENT_PREFIX", "PRIVATE_FIELDS", "is_heartbeat", "parse_push"]

ORDER_EVENT_PREFIX = "kwaishop_order_"
PRIVATE_FIELDS = ("mobile", "phone", "tel", "receiver")
"""Keys (substrings, lower-case) removed from an event before it is kept as ``raw``."""


def _acknowledged(**kwargs: Any) -> hub.WebhookResult:
    return hub.WebhookResult(body=ACK, media_type="application/json", **kwargs)


def _plain_json(body: bytes) -> Any:
    text = body.strip()
    if not text.startswith(b"{"):
        return None
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None


def is_heartbeat(message: Any) -> bool:
    """The console's test push and the heartbeats: ``{"test": true}``."""
    return isinstance(message, Mapping) and message.get("test") is True


def _private(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in PRIVATE_FIELDS)


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if not _private(str(k))}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _info(message: Mapping[str, Any]) -> dict[str, Any]:
    info = message.get("info")
    if info is None or info == "":
        return {}
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            raise hub.WebhookRejected("push info is not JSON", status_code=400) from None
    if not isinstance(info, Mapping):
        raise hub.WebhookRejected("push info is not a JSON object", status_code=400)
    return dict(info)


def parse_push(account: Account, request: hub.WebhookRequest, *, message_key: str, app_key: str) -> hub.WebhookResult:
    """Decrypt and parse one push.

    :param account: the shop account the push was sent for.
    :param request: the push as it arrived.
    :param message_key: the app's message key (Base64, from the console).
    :param app_key: the app's key; a push naming another app is refused.
    :raises hub.WebhookRejected: the body is not a push of this app (400 for a body that does not
        decrypt or is not the documented JSON, 403 for another app's push).
    """
    if request.method != "POST":
        raise hub.WebhookRejected("pushes are POSTed", status_code=405)
    plain = _plain_json(request.body)
    if is_heartbeat(plain):
        return _acknowledged()
    try:
        plaintext = decrypt_push(request.body, message_key)
    except ValueError as exc:  # not Base64, not whole blocks, bad padding (its message names no value)
        raise hub.WebhookRejected(f"push refused: {exc}", status_code=400) from None
    try:
        message = json.loads(plaintext.decode("utf-8"))
    except ValueError:
        raise hub.WebhookRejected("push refused: the plaintext is not UTF-8 JSON", status_code=400) from None
    if is_heartbeat(message):
        return _acknowledged()
    if not isinstance(message, Mapping):
        raise hub.WebhookRejected("push refused: the plaintext is not a JSON object", status_code=400)
    event, event_id = message.get("event"), message.get("eventId") or message.get("msgId")
    if not isinstance(event, str) or not event or event_id in (None, ""):
        raise hub.WebhookRejected("push refused: no event or eventId", status_code=400)
    sender = message.get("appKey")
    if sender not in (None, "") and str(sender) != app_key:
        raise hub.WebhookRejected("push refused: sent for another app", status_code=403)
    info = _info(message)
    records: list[object] = []
    buyer = info.get("buyerOpenId")
    if event.startswith(ORDER_EVENT_PREFIX) and isinstance(buyer, str | int) and str(buyer):
        records.append(Fan(platform=account.platform, account_id=account.account_id, platform_uid=str(buyer)))
    raw = _scrub({k: v for k, v in message.items() if k != "info"})
    raw["info"] = _scrub(info)
    follow_up = None
    if event.startswith(ORDER_EVENT_PREFIX):  # read the order list from the change's time, after the ack
        try:
            since = max(0, as_int(info.get("updateTime") or info.get("createTime") or message.get("createTime"), default=0))
        except ValueError:
            since = 0  # unknown: the follow-up reads from the time it runs
        follow_up = {"orders_updated_since": since}
    return _acknowledged(events=records, dedupe_key=f"{event_id}", raw=raw, follow_up=follow_up)
