"""Douyin JSON ↔ canonical records, as pure functions.

Inbound: a fans-list page → :class:`schemas.Fan` records; a callback's envelope and content
(already verified and parsed by :mod:`plugins.douyin.webhooks`) → the records it stands for.
Outbound: a :class:`schemas.Message` → the ``content`` of ``/im/send/msg/``; a
:class:`schemas.MemberCard` → one member of ``/goodlife/v1/member/user/update/``.

Every event function takes ``(event, envelope, content, account, own_open_id)`` so that the
webhook parser dispatches them from one table; they raise ``KeyError``/``TypeError``/
``ValueError`` (pydantic's ``ValidationError`` included) for an event they cannot read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from plugins.douyin.wire import as_int
from schemas import (
    Account,
    AccountStatus,
    CardStatus,
    ContentType,
    Direction,
    Fan,
    FollowState,
    Gender,
    MemberCard,
    Message,
    from_epoch_millis,
    from_epoch_seconds,
)

__all__ = [
    "GENDERS",
    "MESSAGE_TYPES",
    "authorisation_records",
    "counterpart",
    "event_order",
    "event_time",
    "fans",
    "follow_records",
    "im_records",
    "member_join_records",
    "member_leave_records",
    "member_update",
    "message_content",
]

log = logging.getLogger("siyu.douyin")

GENDERS = {1: Gender.MALE, 2: Gender.FEMALE}
"""Douyin ``gender`` → ours (the common convention; 0 and anything else: unknown)."""

MESSAGE_TYPES = {"text": ContentType.TEXT, "image": ContentType.IMAGE, "video": ContentType.VIDEO}
"""A callback's ``message_type`` → ours (anything else: other)."""

CARD_FIELDS = ("card_template_id", "app_id", "path", "schema", "query")


# -- fans list ---------------------------------------------------------------------------------

def fans(account: Account, items: Iterable[Mapping[str, Any]]) -> list[Fan]:
    """The fans of one ``/fans/list/`` page, validated at once; every listed fan is following.

    :param account: the account the page was read for.
    :param items: the page's ``data.list``.
    """
    return Fan.many({
        "platform": account.platform, "account_id": account.account_id, "platform_uid": item["open_id"],
        "union_id": item.get("union_id") or None, "nickname": item.get("nickname") or None,
        "avatar_url": item.get("avatar") or None,
        "gender": GENDERS.get(as_int(item.get("gender")), Gender.UNKNOWN),
        "follow_state": FollowState.FOLLOWING,
    } for item in items)


# -- outbound ----------------------------------------------------------------------------------

def message_content(message: Message) -> dict[str, Any]:
    """The ``content`` of a private message: text, image or a card.

    :raises ValueError: the message is of a kind Douyin cannot send (the text says what can be).
    """
    body = message.body
    if message.content_type is ContentType.TEXT and body.get("text"):
        return {"msg_type": 1, "text": {"text": str(body["text"])}}
    if message.content_type is ContentType.IMAGE and body.get("media_id"):
        return {"msg_type": 2, "image": {"media_id": str(body["media_id"])}}
    if message.content_type is ContentType.CARD and body.get("card_template_id"):
        return {"msg_type": 10, "applet_card": {k: body[k] for k in CARD_FIELDS if k in body}}
    if message.content_type is ContentType.CARD and body.get("card_id"):
        return {"msg_type": 8, "retain_consult_card": {"card_id": str(body["card_id"])}}
    raise ValueError("Douyin sends text (body.text), image (body.media_id) or card (body.card_id, "
                     "or body.card_template_id for a mini-program card) messages")


def member_update(card: MemberCard, *, level_offset: int, now: int) -> dict[str, Any]:
    """One member of a 来客 update: the absolute balance in cents and the level within 1..10.

    :param card: the card; ``card_no`` is the member's Douyin open_id.
    :param level_offset: Douyin ``user_level`` = the hub's level + this.
    :param now: the update time, epoch seconds.
    """
    level = min(10, max(1, card.level + level_offset))
    return {"open_id": card.card_no, "points_amount_cent": card.balance * 100, "user_level": level,
            "update_time": now}


# -- callbacks ---------------------------------------------------------------------------------

def counterpart(envelope: Mapping[str, Any], own_open_id: str) -> str:
    """The fan's open_id: whichever of sender and receiver is not the enterprise account."""
    sender, receiver = envelope.get("from_user_id"), envelope.get("to_user_id")
    if sender and sender != own_open_id:
        return str(sender)
    if receiver and receiver != own_open_id:
        return str(receiver)
    raise KeyError("from_user_id")


def im_records(event: str, envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
               own_open_id: str) -> list[Any]:
    """``im_receive_msg``/``im_send_msg``: the message, and the fan's nickname and avatar (plus one
    ``messages`` interaction for an inbound message)."""
    inbound = event == "im_receive_msg"
    fan_uid = counterpart(envelope, own_open_id)
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
            profile = {"nickname": info.get("nick_name"), "avatar_url": info.get("avatar")}
            known = {k: v for k, v in profile.items() if v}
    if inbound:  # a message from the fan is an interaction (counted once: the callback is stored once)
        known["interactions_added"] = {"messages": 1}
    if known:
        records.append(Fan(platform=account.platform, account_id=account.account_id, platform_uid=fan_uid, **known))
    return records


def follow_records(event: str, envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
                   own_open_id: str) -> list[Any]:
    """``new_follow_action``: the fan, following since ``action_time`` (seconds), one more follow."""
    fields: dict[str, Any] = {"follow_state": FollowState.FOLLOWING, "interactions_added": {"follows": 1}}
    if content.get("action_time") not in (None, ""):
        fields["followed_at"] = from_epoch_seconds(as_int(content["action_time"]))
    return [Fan(platform=account.platform, account_id=account.account_id,
                platform_uid=counterpart(envelope, own_open_id), **fields)]


def member_join_records(event: str, envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
                        own_open_id: str) -> list[Any]:
    """``life_member_join``: the fan with its 来客 card opened (``card_no`` = open_id) and the phone
    it joined with (kept only as a keyed hash by the hub)."""
    uid = str(content.get("open_id") or counterpart(envelope, own_open_id))
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


def member_leave_records(event: str, envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
                         own_open_id: str) -> list[Any]:
    """``life_member_leave``: the fan's member card closed."""
    uid = str(content.get("open_id") or counterpart(envelope, own_open_id))
    return [Fan(platform=account.platform, account_id=account.account_id, platform_uid=uid,
                card_status=CardStatus.CLOSED)]


def authorisation_records(event: str, envelope: Mapping[str, Any], content: Mapping[str, Any], account: Account,
                          own_open_id: str) -> list[Any]:
    """``authorize``/``unauthorize``: the account, authorised (active) or not."""
    status = AccountStatus.ACTIVE if event == "authorize" else AccountStatus.UNAUTHORISED
    return [Account(platform=account.platform, account_id=account.account_id, status=status)]


TIME_FIELDS = ("action_time", "event_time", "create_time", "timestamp")
"""Where an event's time may be, in its content then its envelope (seconds or milliseconds).
Only ``action_time`` (follow) and ``create_time`` (IM) are documented; the others are tried."""

SEQUENCES = {"new_follow_action": "follow", "life_member_join": "card", "life_member_leave": "card",
             "authorize": "account", "unauthorize": "account"}
"""Events that overwrite one state → the name of that state."""


def event_time(*sources: Mapping[str, Any]) -> datetime | None:
    """The first plausible event time (years 2000–2100) in ``sources``, or ``None``."""
    for source in sources:
        for key in TIME_FIELDS:
            value = source.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, str)) or len(str(value)) > 16:
                continue
            number = as_int(value, -1)
            if 946_684_800_000 <= number <= 4_102_444_800_000:
                return from_epoch_millis(number)
            if 946_684_800 <= number <= 4_102_444_800:
                return from_epoch_seconds(number)
    return None


def event_order(event: str, envelope: Mapping[str, Any], content: Mapping[str, Any],
                records: list[Any]) -> tuple[str | None, datetime | None]:
    """``(sequence, occurred_at)`` of a state-changing event (see :class:`hub.WebhookResult`), else
    ``(None, None)``; an event without a time is applied in the order it arrives."""
    state = SEQUENCES.get(event)
    if state is None:
        return None, None
    if state == "account":
        key = state
    else:
        fans = [r for r in records if isinstance(r, Fan)]
        if not fans:
            return None, None
        key = f"{state}:{fans[0].platform_uid}"
    return key, event_time(content, envelope)
