"""Alipay callbacks: the card's activation callback (a GET) and asynchronous notifies (form
POSTs, RSA2-verified).

The activation callback carries the shopper's ``auth_code`` and the form's ``request_id``.
Alipay does not sign it, and nothing is called while the shopper waits:
:func:`parse_activation` checks its shape, seals the code and returns it as the callback's
follow-up, keyed by the code's hash (a replayed or reused code is stored once), with a page for
the shopper.  The adapter's ``complete_webhook`` then exchanges the code and reads the form.

A notify is verified before anything in it is read: the form is decoded, its string to verify
built by rule V1 (``sign`` and ``sign_type`` left out: card open/delete, payment-style and app-auth
messages) or V2 (only ``sign`` left out: the kinds named in ``notify_v2_kinds``, 生活号 gateway
messages), and checked with Alipay's public key.  Then ``app_id`` must be the account's,
``version`` one of ``notify_versions``, and ``notify_id`` present: it is the dedupe key, so a
re-delivery stores nothing.  The answer is the literal ``success``, which the receiver sends only
after the notify is stored.

A card-delete notify closes the fan's card (the hub then closes the member's card); a card-open
notify reports a card opened elsewhere.  Any other verified notify is kept as its kind and id
only: its fields may hold tokens (``open_app_auth_notify`` carries ``app_auth_token``).
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import parse_qsl

import hub
from plugins.alipay.mapping import notify_fan
from plugins.alipay.wire import notify_sign_content, verify
from schemas import CardStatus

__all__ = ["ACTIVATION", "NOTIFY_ACK", "activation_page", "notify_kind", "parse_activation", "parse_notify"]

NOTIFY_ACK = b"success"
"""What Alipay expects from a notify it should stop re-sending."""
ACTIVATION = "alipay.activation"
"""The ``kind`` of an activation callback's follow-up."""
MAX_CODE = 128
"""The longest ``auth_code`` or ``request_id`` taken (Alipay's are far shorter)."""
ACTIVATION_TITLE = "会员卡开通中"
ACTIVATION_TEXT = "我们已收到您的开卡信息。会员卡稍后出现在支付宝卡包中，并显示您的会员积分。"


def _query_value(query: Mapping[str, str], name: str) -> str:
    value = query.get(name) or ""
    if len(value) > MAX_CODE or not value.isascii() or not value.isprintable() or " " in value:
        raise hub.WebhookRejected(f"activation callback with a malformed {name}", status_code=400)
    return value


def parse_activation(request: hub.WebhookRequest, *, app_id: str, read_form: bool, seal: Callable[[str], str],
                     done_url: str | None = None) -> hub.WebhookResult:
    """Take the activation callback: store it (sealed) for the follow-up, answer the shopper a page.

    :param request: the GET as it arrived (``auth_code``, ``request_id``, maybe ``app_id``).
    :param app_id: the account's app id; a callback naming another app is refused.
    :param read_form: whether the form is read (a ``request_id`` is then required).
    :param seal: encrypts the code for the stored follow-up.
    :param done_url: a link on the page.
    :raises hub.WebhookRejected: no or a malformed ``auth_code`` (or ``request_id``), another app.
    """
    code, request_id = _query_value(request.query, "auth_code"), _query_value(request.query, "request_id")
    if not code:
        raise hub.WebhookRejected("activation callback without auth_code", status_code=400)
    if not request_id and read_form:
        raise hub.WebhookRejected("activation callback without request_id", status_code=400)
    if request.query.get("app_id") and request.query.get("app_id") != app_id:
        raise hub.WebhookRejected("activation callback for another app_id", status_code=403)
    digest = hashlib.sha256(code.encode("utf-8")).hexdigest()
    page = activation_page(ACTIVATION_TITLE, ACTIVATION_TEXT, link=done_url)
    return hub.WebhookResult(dedupe_key=f"activation:{digest[:40]}", body=page, media_type="text/html",
                             follow_up={"kind": ACTIVATION, "code": seal(code), "request_id": request_id,
                                        "received_at": int(time.time())})


def notify_kind(form: dict[str, str]) -> str:
    """What a notify is: its ``msg_method``, else ``notify_type``, else ``service``."""
    return form.get("msg_method") or form.get("notify_type") or form.get("service") or ""


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise hub.WebhookRejected("notify body is not UTF-8", status_code=400) from None
    return dict(parse_qsl(text, keep_blank_values=True))


def _fields(form: dict[str, str]) -> dict[str, Any]:
    """The notify's fields: the form's, with ``biz_content`` (a JSON object) spread over them."""
    fields: dict[str, Any] = dict(form)
    try:
        inner = json.loads(form["biz_content"]) if form.get("biz_content") else None
    except ValueError:
        inner = None
    if isinstance(inner, dict):
        fields.update(inner)
    return fields


def parse_notify(account_id: str, request: hub.WebhookRequest, *, public_key: Any, app_id: str,
                 versions: Collection[str], v2_kinds: Collection[str], open_kinds: Collection[str],
                 delete_kinds: Collection[str]) -> hub.WebhookResult:
    """Verify an asynchronous notify, then turn it into records.

    :param account_id: the hub's account the notify is addressed to.
    :param request: the POST as it arrived.
    :param public_key: Alipay's public key (the account's ``alipay_public_key``).
    :param app_id: the account's app id; a notify for another app is refused.
    :param versions: the ``version`` values accepted.
    :param v2_kinds: the kinds verified by rule V2 (only ``sign`` left out).
    :param open_kinds: the kinds that report an opened card.
    :param delete_kinds: the kinds that report a deleted card.
    :raises hub.WebhookRejected: unsigned, forged, for another app, of another version, or without
        a ``notify_id``.
    """
    form = _form(request.body)
    signature = form.get("sign", "")
    if not signature:
        raise hub.WebhookRejected("notify without a signature", status_code=401)
    kind = notify_kind(form)
    rule = "V2" if kind in v2_kinds else "V1"
    if form.get("sign_type", "RSA2").upper() != "RSA2":
        raise hub.WebhookRejected("notify not signed with RSA2", status_code=400)
    if not verify(notify_sign_content(form, rule).encode("utf-8"), signature, public_key):
        raise hub.WebhookRejected("notify signature does not verify", status_code=401)
    if form.get("app_id") != app_id:
        raise hub.WebhookRejected("notify for another app_id", status_code=403)
    if form.get("version") not in versions:
        raise hub.WebhookRejected("notify of an unsupported version", status_code=400)
    notify_id = form.get("notify_id")
    if not notify_id:
        raise hub.WebhookRejected("notify without notify_id", status_code=400)
    fields = _fields(form)
    events: list[Any] = []
    raw: dict[str, Any] = {"kind": kind, "notify_id": notify_id}
    status = None
    if kind in delete_kinds:
        status = CardStatus.CLOSED
    elif kind in open_kinds and str(fields.get("success", "true")).lower() != "false":
        status = CardStatus.ACTIVE
    if status is not None:
        fan = notify_fan(account_id, fields, status)
        if fan is not None:
            events.append(fan)
        if fields.get("biz_card_no"):
            raw["biz_card_no"] = str(fields["biz_card_no"])
    return hub.WebhookResult(events=events, dedupe_key=f"notify:{notify_id}", body=NOTIFY_ACK,
                             media_type="text/plain", raw=raw)


def activation_page(title: str, text: str, *, link: str | None = None) -> bytes:
    """The small page the shopper sees after the activation form (Alipay opens the callback in
    the user's Alipay client)."""
    more = f'<p><a href="{html.escape(link, quote=True)}">继续</a></p>' if link else ""
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title></head>'
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{more}</body></html>").encode("utf-8")
