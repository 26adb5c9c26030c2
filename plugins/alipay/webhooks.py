"""Alipay callbacks: asynchronous notifies (form POSTs, RSA2-verified) and the activation page.

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

import html
import json
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qsl

import hub
from plugins.alipay.mapping import notify_fan
from plugins.alipay.wire import notify_sign_content, verify
from schemas import CardStatus

__all__ = ["NOTIFY_ACK", "activation_page", "notify_kind", "parse_notify"]

NOTIFY_ACK = b"success"
"""What Alipay expects from a notify it should stop re-sending."""


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
