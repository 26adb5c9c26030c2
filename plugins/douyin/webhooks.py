"""Douyin callbacks: verify the signature on the raw bytes, parse the envelope, dispatch each event
to its mapping in :mod:`plugins.douyin.mapping`.

One URL receives every event of the app; the ``event`` field says which.  The envelope is
``{event, from_user_id, to_user_id, client_key, content, log_id}`` and ``content`` is usually a
JSON *string* that is parsed a second time (``verify_webhook`` sends an object).

=====================  =====================================================================
event                  what the hub gets
=====================  =====================================================================
verify_webhook         the challenge echoed as ``{"challenge": …}``; nothing stored
im_receive_msg         an inbound :class:`schemas.Message` (+ the sender's nickname/avatar and one
                       more ``messages`` interaction)
im_send_msg            an outbound :class:`schemas.Message`
new_follow_action      the fan, following, with ``followed_at``; one more ``follows`` interaction
life_member_join       the fan, its 来客 member card opened, with the phone the member joined
                       with (an identity key)
life_member_leave      the fan, its member card closed
authorize, unauthorize the account, authorised or not (``Account.status``)
anything else          no record: stored and acknowledged, the event name and content kept
                       as ``WebhookResult.raw`` (phones removed)
=====================  =====================================================================

The signature covers the body only, so a callback's identity comes from the body: a message's
``server_message_id``, otherwise the SHA-256 of the signed bytes (:func:`dedupe_key`); the
``Msg-Id`` header, which anyone replaying a capture can change, is not used.  Events that
overwrite a state (follow, member card, authorisation) carry their event time where the body has
one (:func:`plugins.douyin.mapping.event_order`), so an older one never undoes a newer one.  The
body is signed without a timestamp: no freshness window is possible; a replay is stored once.
The signature is checked before the body is parsed, and parsing refuses JSON nested deeper than
:data:`plugins.douyin.wire.MAX_DEPTH`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import hub
from plugins.douyin import mapping
from plugins.douyin.wire import SIGNATURE_HEADER, loads_bounded, signature_matches
from schemas import Account

__all__ = ["EVENTS", "MAX_CHALLENGE_BYTES", "PRIVATE_FIELDS", "dedupe_key", "parse_callback", "verify_signature"]

log = logging.getLogger("siyu.douyin")

MAX_CHALLENGE_BYTES = 4096
"""The largest unsigned ``verify_webhook`` body read when ``verify_challenge_signature`` is off."""

PRIVATE_FIELDS = ("mobile", "new_mobile", "old_mobile", "phone")
"""Removed from an event's content before it is kept as ``WebhookResult.raw``."""

EVENTS: dict[str, Callable[..., list[Any]]] = {
    "im_receive_msg": mapping.im_records,
    "im_send_msg": mapping.im_records,
    "new_follow_action": mapping.follow_records,
    "life_member_join": mapping.member_join_records,
    "life_member_leave": mapping.member_leave_records,
    "authorize": mapping.authorisation_records,
    "unauthorize": mapping.authorisation_records,
}
"""Event name → the mapping that builds its records; any other event is stored as it came."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def verify_signature(client_secret: str, request: hub.WebhookRequest) -> None:
    """Reject ``request`` unless ``X-Douyin-Signature`` signs its exact body bytes.

    :raises hub.WebhookRejected: 401 when the header is missing or does not match.
    """
    signature = _header(request.headers, SIGNATURE_HEADER)
    if not signature:
        raise hub.WebhookRejected("missing X-Douyin-Signature", status_code=401)
    if not signature_matches(client_secret, request.body, signature):
        raise hub.WebhookRejected("X-Douyin-Signature does not match the body", status_code=401)


def _loads(body: bytes) -> dict[str, Any]:
    try:
        envelope = loads_bounded(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise hub.WebhookRejected("the body is not JSON (or nests too deep)", status_code=400) from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("event"), str):
        raise hub.WebhookRejected("the body is not a Douyin event", status_code=400)
    return envelope


def _content(envelope: Mapping[str, Any]) -> dict[str, Any]:
    content = envelope.get("content")
    if isinstance(content, str):  # most events send their content as a JSON string
        content = loads_bounded(content) if content.strip() else {}
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError("content is not an object")
    return content


def _scrubbed(envelope: Mapping[str, Any], content: Mapping[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in content.items() if k not in PRIVATE_FIELDS}
    return {**{k: v for k, v in envelope.items() if k != "content"}, "content": clean}


def parse_callback(account: Account, request: hub.WebhookRequest, *, client_secret: str, own_open_id: str,
                   verify_challenge: bool = True) -> hub.WebhookResult:
    """Verify and parse one Douyin callback.

    :param account: the account the callback was addressed to.
    :param request: the callback as it arrived (raw body bytes).
    :param client_secret: the app's client secret (the signature key).
    :param own_open_id: the enterprise account's open_id, to tell the fan from the account.
    :param verify_challenge: also require a signature on ``verify_webhook`` (see the docs).
    :raises hub.WebhookRejected: a bad or missing signature, a body that is not a Douyin event.
    """
    if request.method.upper() != "POST":
        raise hub.WebhookRejected("Douyin delivers callbacks by POST", status_code=405)
    signed = True
    try:
        verify_signature(client_secret, request)
    except hub.WebhookRejected:
        if verify_challenge or len(request.body) > MAX_CHALLENGE_BYTES:
            raise
        signed = False  # only an unsigned verify_webhook may pass, and only a small one
    envelope = _loads(request.body)
    event = envelope["event"]
    if event == "verify_webhook":
        content = envelope.get("content")
        challenge = content.get("challenge") if isinstance(content, Mapping) else None
        if not isinstance(challenge, (str, int)) or isinstance(challenge, bool) or len(str(challenge)) > 256:
            raise hub.WebhookRejected("verify_webhook without a usable challenge", status_code=400)
        return hub.WebhookResult(body=json.dumps({"challenge": challenge}).encode(), media_type="application/json")
    if not signed:
        raise hub.WebhookRejected("missing or bad X-Douyin-Signature", status_code=401)
    records: list[Any] = []
    raw: dict[str, Any] = {"event": event[:64]}
    content: dict[str, Any] = {}
    try:
        content = _content(envelope)
        raw = _scrubbed(envelope, content)
        build = EVENTS.get(event)
        if build is not None:
            records = build(event, envelope, content, account, own_open_id)
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:  # incl. ValidationError
        log.warning("douyin %s: %s event not understood (%s); stored without records",
                    account.account_id, event[:64].encode("unicode_escape").decode("ascii"), type(exc).__name__)
        records = []
    sequence, occurred_at = mapping.event_order(event, envelope, content, records)
    return hub.WebhookResult(events=records, dedupe_key=dedupe_key(event, content, request.body), raw=raw,
                             sequence=sequence, occurred_at=occurred_at)


def dedupe_key(event: str, content: Mapping[str, Any], body: bytes) -> str:
    """A callback's identity from what the signature covers, never from the unsigned ``Msg-Id``.

    A message is its ``server_message_id`` (the same message re-sent in other bytes is still one);
    any other event is the SHA-256 of the signed body, so a replay under any header is one event.
    """
    message_id = content.get("server_message_id") if event in ("im_receive_msg", "im_send_msg") else None
    if isinstance(message_id, (str, int)) and not isinstance(message_id, bool) and 0 < len(str(message_id)) <= 96:
        return f"im:{message_id}"
    return "sha256:" + hashlib.sha256(body).hexdigest()
