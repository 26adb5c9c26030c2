"""WeCom callbacks: URL verification (GET) and encrypted events (POST).

Nothing in a callback is trusted before its ``msg_signature`` verifies (SHA-1 over the sorted
token, timestamp, nonce and ``Encrypt``/``echostr``), its ciphertext decrypts, and the receive id
inside equals the corp id.  Both XML layers are read with entity expansion made impossible.

``change_external_contact`` events update fans incrementally.  The event carries only ids, so
the customer's current relations must be read with ``externalcontact/get``; :func:`parse` makes no
call: it returns the event as an inbound ``event`` message (with the ``WelcomeCode`` of an add
event, valid for a short time) and a ``follow_up`` naming the customer.  The hub stores the
callback, answers, and later hands the follow-up to the adapter's ``complete_webhook``, which
reads the customer (:func:`complete`): a ``del_*`` event adds the ended relation with
``ended_at`` (never dropping it), and when no relation is left (errcode 84061) the fan is marked
unfollowed.  So a callback is never lost when the API is down, and a replay (stored once) costs
no call.

The outer XML of a POST is read before its signature can be checked: it is read with a parser
that stops at the second level of nesting (:func:`plugins.wecom.wire.parse_flat`), in a worker
thread when the body is large, so an unsigned body costs the server's loop nothing.

This module does not know the adapter: :func:`complete` takes two callables, so the adapter
imports it and never the other way round.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import hub
from plugins.wecom.mapping import TagNames, fan_from_contact
from plugins.wecom.wire import CryptoError, MsgCrypt, XmlError, parse_flat
from schemas import (
    Account,
    ContentType,
    Direction,
    Fan,
    FollowRelation,
    FollowState,
    Message,
    Record,
    from_epoch_seconds,
)

__all__ = ["ADD_TYPES", "END_TYPES", "GONE", "INLINE_BYTES", "CustomerReader", "complete", "crypt_for", "parse"]

INLINE_BYTES = 16 * 1024
"""An unverified body up to this size is read on the event loop; a larger one in a worker thread."""

FOLLOW_UP = "contact_change"
"""The ``kind`` of the follow-up a contact change leaves for :func:`complete`."""

EVENT_FIELDS = ("ChangeType", "UserID", "ExternalUserID", "CreateTime", "State")
"""What a contact change's follow-up keeps of the event (ids, no message text)."""

ADD_TYPES = frozenset({"add_external_contact", "add_half_external_contact", "edit_external_contact"})
"""Change types after which the customer's relations are read afresh."""
END_TYPES = frozenset({"del_external_contact", "del_follow_user"})
"""Change types that end one staff member's relation with the customer."""
GONE = (84061, 40096)
"""errcodes meaning no relation (or no such customer) is left."""

CustomerReader = Callable[[str], Awaitable[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]]
"""Reads one customer whole: ``external_userid`` → ``(external_contact, follow_user list)``."""


def crypt_for(config: Any) -> MsgCrypt:
    """The account's :class:`MsgCrypt`; a 403 rejection when callbacks are not configured.

    :param config: the account's ``WeComAdapter.Config`` (``token``, ``encoding_aes_key``, ``corp_id``).
    """
    if config.token is None or config.encoding_aes_key is None:
        raise hub.WebhookRejected("callbacks are not configured for this account (token, encoding_aes_key)",
                                  status_code=403)
    try:
        return MsgCrypt(config.token.get_secret_value(), config.encoding_aes_key.get_secret_value(), config.corp_id)
    except CryptoError as exc:
        raise hub.WebhookRejected(f"bad callback configuration: {exc}", status_code=403) from None


def _open(crypt: MsgCrypt, query: Mapping[str, str], encrypted: str) -> bytes:
    signature, timestamp, nonce = (query.get(k) or "" for k in ("msg_signature", "timestamp", "nonce"))
    try:
        return crypt.decrypt_verified(signature, timestamp, nonce, encrypted)
    except CryptoError as exc:
        if exc.code == -40001 and " " in encrypted:  # a '+' that arrived un-escaped, decoded as a space
            try:
                return crypt.decrypt_verified(signature, timestamp, nonce, encrypted.replace(" ", "+"))
            except CryptoError:
                pass
        status = 401 if exc.code == -40001 else 400
        raise hub.WebhookRejected(f"callback refused: {exc}", status_code=status) from None


def _check_age(max_age: int, query: Mapping[str, str]) -> None:
    if not max_age:
        return
    timestamp = query.get("timestamp") or ""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age:
        raise hub.WebhookRejected("callback timestamp missing or too old", status_code=403)


async def parse(config: Any, account: Account, request: hub.WebhookRequest, *,
                platform: str = "wecom") -> hub.WebhookResult:
    """The callback as canonical records (and a follow-up), or :class:`hub.WebhookRejected`; no HTTP call.

    :param config: the account's ``WeComAdapter.Config``.
    :param account: the account the callback came for.
    :param request: the callback as it arrived.
    :param platform: the platform name.
    """
    crypt = crypt_for(config)
    query = request.query
    if request.method.upper() == "GET":
        echo = _open(crypt, query, query.get("echostr") or "")
        _check_age(config.callback_max_age, query)
        return hub.WebhookResult(body=echo, media_type="text/plain")
    try:
        if len(request.body) > INLINE_BYTES:  # unverified: parsed off the loop
            outer = await asyncio.to_thread(parse_flat, request.body)
        else:
            outer = parse_flat(request.body)
    except XmlError as exc:
        raise hub.WebhookRejected(f"callback body refused: {exc}") from None
    if not outer.get("Encrypt"):
        raise hub.WebhookRejected("callback body has no Encrypt element")
    plain = _open(crypt, query, outer["Encrypt"])
    _check_age(config.callback_max_age, query)
    try:
        message = parse_flat(plain)
    except XmlError as exc:
        raise hub.WebhookRejected(f"decrypted message refused: {exc}") from None
    msg_id = message.get("MsgId", "")
    dedupe_key = f"msg:{msg_id}" if msg_id and len(msg_id) <= 64 else "evt:" + hashlib.sha256(plain).hexdigest()
    records: list[Record] = []
    follow_up = None
    if message.get("MsgType") == "event" and message.get("Event") == "change_external_contact":
        records, follow_up = _contact_change(account, message, dedupe_key, platform)
    return hub.WebhookResult(events=records, dedupe_key=dedupe_key, body=b"", media_type="text/plain",
                             follow_up=follow_up)


def _contact_change(account: Account, event: dict[str, str], dedupe_key: str,
                    platform: str) -> tuple[list[Record], dict[str, Any] | None]:
    change = event.get("ChangeType", "")
    customer = event.get("ExternalUserID", "")
    created = event.get("CreateTime", "")
    if not customer or not created.isdigit() or len(created) > 12:
        raise hub.WebhookRejected("change_external_contact without ExternalUserID or CreateTime")
    note = Message(
        platform=platform, account_id=account.account_id, platform_msg_id=dedupe_key,
        fan_uid=customer, direction=Direction.INBOUND, content_type=ContentType.EVENT,
        sent_at=from_epoch_seconds(created),
        body={k: event[k] for k in ("ChangeType", "UserID", "State", "WelcomeCode", "Source", "FailReason")
              if event.get(k)},
    )
    if change not in ADD_TYPES and change not in END_TYPES:
        return [note], None  # transfer_fail and anything new: kept as an event, no fan change
    return [note], {"kind": FOLLOW_UP, "event": {k: event[k] for k in EVENT_FIELDS if event.get(k)}}


async def complete(
    account: Account,
    follow_up: Mapping[str, Any],
    *,
    read_customer: CustomerReader,
    tag_names: Callable[[], Awaitable[TagNames]],
    platform: str = "wecom",
) -> list[Record]:
    """The fan a stored contact change leaves, read now from ``externalcontact/get``.

    Raises whatever the reads raise (the hub keeps the callback pending and tries again).

    :param account: the account the callback came for.
    :param follow_up: what :func:`parse` returned as ``follow_up``.
    :param read_customer: reads a customer whole (``externalcontact/get``).
    :param tag_names: the corp's tag id → name.
    :param platform: the platform name.
    """
    if follow_up.get("kind") != FOLLOW_UP or not isinstance(follow_up.get("event"), Mapping):
        raise ValueError(f"not a WeCom follow-up: {str(follow_up.get('kind'))[:40]!r}")
    event = {k: str(v) for k, v in follow_up["event"].items()}
    change, staff, customer = event.get("ChangeType", ""), event.get("UserID", ""), event.get("ExternalUserID", "")
    at = from_epoch_seconds(event["CreateTime"])
    names = await tag_names()
    contact: Mapping[str, Any]
    try:
        contact, follows = await read_customer(customer)
    except hub.PermanentError as exc:
        if exc.code not in GONE:
            raise
        contact, follows = {}, []
    ended: list[FollowRelation] = []
    if change in END_TYPES and staff:
        follows = [f for f in follows if f.get("userid") != staff]
        ended = [FollowRelation(staff_id=staff, ended_at=at)]
    if contact and (follows or ended):
        return [fan_from_contact(account.account_id, contact, follows, names, ended=ended, platform=platform)]
    if change in END_TYPES and staff:  # nothing left to read: only what the event says
        return [Fan(platform=platform, account_id=account.account_id, platform_uid=customer,
                    follow_state=FollowState.UNFOLLOWED, unfollowed_at=at, follows=ended)]
    if change != "edit_external_contact" and staff:  # an add whose customer cannot be read (yet)
        return [Fan(platform=platform, account_id=account.account_id, platform_uid=customer,
                    follow_state=FollowState.FOLLOWING,
                    follows=[FollowRelation(staff_id=staff, followed_at=at, state=event.get("State") or None,
                                            ended_at=None)])]
    return []
