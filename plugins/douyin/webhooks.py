"""Douyin callbacks: verify the signature on the raw bytes, then turn events into canonical records.

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
anything else          no record: stored under its ``Msg-Id`` and acknowledged, the event
                       name and content kept as ``WebhookResult.raw`` (phones removed)
=====================  =====================================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

import hub
from plugins.douyin.wire import MSG_ID_HEADER, SIGNATURE_HEADER, as_int, signature_matches
from schemas import (
    Account,
    AccountStatus,
    CardStatus,
    ContentType,
    Direction,
    Fan,
    FollowState,
    Message,
    from_epoch_millis,
    from_epoch_seconds,
)

__all__ = ["parse_callback", "verify_signature"]

log = logging.getLogger("siyu.douyin")

MESSAGE_TYPES = {"text": ContentType.TEXT, "image": ContentType.IMAGE, "video": ContentType.VIDEO}
PRIVATE_FIELDS = ("mobile", "new_mobile", "old_mobile", "phone")


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
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise hub.WebhookRejected("the body is not JSON", status_code=400) from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("event"), str):
        raise hub.WebhookRejected("the body is not a Douyin event", status_code=400)
    return envelope


def _content(envelope: Mapping[str, Any]) -> dict[str, Any]:
    content = envelope.get("content")
    if isinstance(content, str):  # most events send their content as a JSON string
        content = json.loads(content) if content.strip() else {}
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError("content is not an object")
    return content


def _scrubbed(envelope: Mapping[str, Any], content: Mapping[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in content.items() if k not in PRIVATE_FIELDS}
    return {**{k: v for k, v in envelope.items() if k != "content"}, "content": clean}


def _counterpart(envelope: Mapping[str, Any], own_open_id: str) -> str:
    """The fan's open_id: whichever of sender and receiver is not the enterprise account."""
    sender, receiver = envelope.get("from_user_id"), envelope.get("to_user_id")
    if sender and sender != own_open_id:
        return str(sender)
    if receiver and receiver != own_open_id:
        return str(receiver)
    raise KeyError("from_user_id")


def _im(event: str, envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
        own_open_id: str) -> list[Any]:
    inbound = event == "im_receive_msg"
    fan_uid = _counterpart(envelope, own_open_id)
    kind = str(content.get("message_type") or "other")
    body: dict[str, Any] = {"message_type": kind}
    for key in ("text", "source", "conversation_type"):
        if content.get(key) not in (None, ""):
            body[key] = content[key]
    message = Message(
        platform=account.platform, account_id=account.account_id,
        platform_msg_id=str(content["server_message_id"]), conversation_id=str(content["conversation_short_id"]),
        fan_uid=fan_uid, direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        content_type=MESSAGE_TYPES.get(kind, ContentType.OTHER), body=body,
        sent_at=from_epoch_millis(as_int(content["create_time"])),
    )
    records: list[Any] = [message]
    known: dict[str, Any] = {}
    for info in content.get("user_infos") or ():
        if isinstance(info, Mapping) and info.get("open_id") == fan_uid:
            known = {k: v for k, v in {"nickname": info.get("nick_name"), "avatar_url": info.get("avatar")}.items() if v}
    if inbound:  # a message from the fan is an interaction (counted once: the callback is stored once)
        known["interactions_added"] = {"messages": 1}
    if known:
        records.append(Fan(platform=account.platform, account_id=account.account_id, platform_uid=fan_uid, **known))
    return records


def _follow(envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account, own_open_id: str) -> list[Any]:
    fields: dict[str, Any] = {"follow_state": FollowState.FOLLOWING, "interactions_added": {"follows": 1}}
    if content.get("action_time") not in (None, ""):
        fields["followed_at"] = from_epoch_seconds(as_int(content["action_time"]))
    return [Fan(platform=account.platform, account_id=account.account_id,
                platform_uid=_counterpart(envelope, own_open_id), **fields)]


def _member_join(envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
                 own_open_id: str) -> list[Any]:
    uid = str(content.get("open_id") or _counterpart(envelope, own_open_id))
    fan = Fan(platform=account.platform, account_id=account.account_id, platform_uid=uid,
              card_no=uid, card_status=CardStatus.ACTIVE)  # a 来客 member is addressed by open_id
    mobile = content.get("mobile")
    if mobile:
        try:
            fan.phone = mobile
        except ValidationError:
            log.info("douyin %s: life_member_join carried a phone that is not a mainland mobile; "
                     "kept the member without it", account.account_id)
    return [fan]


def _member_leave(envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
                  own_open_id: str) -> list[Any]:
    uid = str(content.get("open_id") or _counterpart(envelope, own_open_id))
    return [Fan(platform=account.platform, account_id=account.account_id, platform_uid=uid,
                card_status=CardStatus.CLOSED)]


def _authorisation(event: str, account: Account) -> list[Any]:
    status = AccountStatus.ACTIVE if event == "authorize" else AccountStatus.UNAUTHORISED
    return [Account(platform=account.platform, account_id=account.account_id, status=status)]


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
    try:
        verify_signature(client_secret, request)
    except hub.WebhookRejected:
        if verify_challenge or _loads(request.body).get("event") != "verify_webhook":
            raise
    envelope = _loads(request.body)
    event = envelope["event"]
    if event == "verify_webhook":
        content = envelope.get("content")
        challenge = content.get("challenge") if isinstance(content, Mapping) else None
        if challenge is None:
            raise hub.WebhookRejected("verify_webhook without a challenge", status_code=400)
        return hub.WebhookResult(body=json.dumps({"challenge": challenge}).encode(), media_type="application/json")
    dedupe_key = _header(request.headers, MSG_ID_HEADER) or None
    records: list[Any] = []
    raw: dict[str, Any] = {"event": event}
    try:
        content = _content(envelope)
        raw = _scrubbed(envelope, content)
        if event in ("im_receive_msg", "im_send_msg"):
            records = _im(event, envelope, content, account, own_open_id)
        elif event == "new_follow_action":
            records = _follow(envelope, content, account, own_open_id)
        elif event == "life_member_join":
            records = _member_join(envelope, content, account, own_open_id)
        elif event == "life_member_leave":
            records = _member_leave(envelope, content, account, own_open_id)
        elif event in ("authorize", "unauthorize"):
            records = _authorisation(event, account)
    except (KeyError, TypeError, ValueError) as exc:  # includes pydantic's ValidationError
        log.warning("douyin %s: %s event not understood (%s); stored without records",
                    account.account_id, event, type(exc).__name__)
        records = []
    return hub.WebhookResult(events=records, dedupe_key=dedupe_key, raw=raw)
