"""WeCom callbacks: URL verification (GET) and encrypted events (POST).

Nothing in a callback is trusted before its ``msg_signature`` verifies (SHA-1 over the sorted
token, timestamp, nonce and ``Encrypt``/``echostr``), its ciphertext decrypts, and the receive id
inside equals the corp id.  Both XML layers are read with entity expansion made impossible.

``change_external_contact`` events update fans incrementally.  The event carries only ids, so
the customer's current relations are read with ``externalcontact/get`` (through the
``read_customer`` callable the adapter passes in); a ``del_*`` event adds the ended relation with
``ended_at`` (never dropping it), and when no relation is left (errcode 84061) the fan is marked
unfollowed.  Each event is also kept as an inbound ``event`` message (with the ``WelcomeCode`` of
an add event, valid for a short time).

This module does not know the adapter: :func:`parse` takes the account's configuration and two
callables, so the adapter imports it and never the other way round.
"""

from __future__ import annotations

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

__all__ = ["ADD_TYPES", "END_TYPES", "GONE", "CustomerReader", "crypt_for", "parse"]

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


async def parse(
    config: Any,
    account: Account,
    request: hub.WebhookRequest,
    *,
    read_customer: CustomerReader,
    tag_names: Callable[[], Awaitable[TagNames]],
    platform: str = "wecom",
) -> hub.WebhookResult:
    """The callback as canonical records, or :class:`hub.WebhookRejected`.

    :param config: the account's ``WeComAdapter.Config``.
    :param account: the account the callback came for.
    :param request: the callback as it arrived.
    :param read_customer: reads a customer whole (``externalcontact/get``), for contact changes.
    :param tag_names: the corp's tag id → name.
    :param platform: the platform name.
    """
    crypt = crypt_for(config)
    query = request.query
    if request.method.upper() == "GET":
        echo = _open(crypt, query, query.get("echostr") or "")
        _check_age(config.callback_max_age, query)
        return hub.WebhookResult(body=echo, media_type="text/plain")
    try:
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
    dedupe_key = f"msg:{message['MsgId']}" if message.get("MsgId") else "evt:" + hashlib.sha256(plain).hexdigest()
    records: list[Record] = []
    if message.get("MsgType") == "event" and message.get("Event") == "change_external_contact":
        records = await _contact_change(account, message, dedupe_key, read_customer, tag_names, platform)
    return hub.WebhookResult(events=records, dedupe_key=dedupe_key, body=b"", media_type="text/plain")


async def _contact_change(
    account: Account,
    event: dict[str, str],
    dedupe_key: str,
    read_customer: CustomerReader,
    tag_names: Callable[[], Awaitable[TagNames]],
    platform: str,
) -> list[Record]:
    change = event.get("ChangeType", "")
    staff = event.get("UserID", "")
    customer = event.get("ExternalUserID", "")
    if not customer or not event.get("CreateTime", "").isdigit():
        raise hub.WebhookRejected("change_external_contact without ExternalUserID or CreateTime")
    at = from_epoch_seconds(event["CreateTime"])
    note = Message(
        platform=platform, account_id=account.account_id, platform_msg_id=dedupe_key,
        fan_uid=customer, direction=Direction.INBOUND, content_type=ContentType.EVENT, sent_at=at,
        body={k: event[k] for k in ("ChangeType", "UserID", "State", "WelcomeCode", "Source", "FailReason")
              if event.get(k)},
    )
    if change not in ADD_TYPES and change not in END_TYPES:
        return [note]  # transfer_fail and anything new: kept as an event, no fan change
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
        fan = fan_from_contact(account.account_id, contact, follows, names, ended=ended, platform=platform)
        return [fan, note]
    if change in END_TYPES and staff:  # nothing left to read: only what the event says
        fan = Fan(platform=platform, account_id=account.account_id, platform_uid=customer,
                  follow_state=FollowState.UNFOLLOWED, unfollowed_at=at, follows=ended)
        return [fan, note]
    if change != "edit_external_contact" and staff:  # an add whose customer cannot be read (yet)
        fan = Fan(platform=platform, account_id=account.account_id, platform_uid=customer,
                  follow_state=FollowState.FOLLOWING,
                  follows=[FollowRelation(staff_id=staff, followed_at=at, state=event.get("State") or None,
                                          ended_at=None)])
        return [fan, note]
    return [note]
