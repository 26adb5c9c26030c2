"""WeCom callbacks: URL verification (GET) and encrypted events (POST).

Nothing in a callback is trusted before its ``msg_signature`` verifies (SHA-1 over the sorted
token, timestamp, nonce and ``Encrypt``/``echostr``), its ciphertext decrypts, and the receive id
inside equals the corp id.  Both XML layers are read with entity expansion made impossible.

``change_external_contact`` events update fans incrementally.  The event carries only ids, so
the adapter reads the customer's current relations with ``externalcontact/get``; a ``del_*``
event adds the ended relation with ``ended_at`` (never dropping it), and when no relation is
left (errcode 84061) the fan is marked unfollowed.  Each event is also kept as an inbound
``event`` message (with the ``WelcomeCode`` of an add event, valid for a short time).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import hub
from plugins.wecom.crypto import CryptoError, MsgCrypt
from plugins.wecom.mapping import fan_from_contact
from plugins.wecom.xmlmsg import XmlError, parse_flat
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

if TYPE_CHECKING:
    from plugins.wecom.adapter import WeComAdapter

__all__ = ["ADD_TYPES", "END_TYPES", "crypt_for", "parse"]

ADD_TYPES = frozenset({"add_external_contact", "add_half_external_contact", "edit_external_contact"})
"""Change types after which the customer's relations are read afresh."""
END_TYPES = frozenset({"del_external_contact", "del_follow_user"})
"""Change types that end one staff member's relation with the customer."""
GONE = (84061, 40096)
"""errcodes meaning no relation (or no such customer) is left."""


def crypt_for(adapter: WeComAdapter) -> MsgCrypt:
    """The account's :class:`MsgCrypt`; a 403 rejection when callbacks are not configured."""
    config = adapter.config
    if config.token is None or config.encoding_aes_key is None:
        raise hub.WebhookRejected("callbacks are not configured for this account (token, encoding_aes_key)",
                                  status_code=403)
    try:
        return MsgCrypt(config.token.get_secret_value(), config.encoding_aes_key.get_secret_value(), config.corp_id)
    except CryptoError as exc:
        raise hub.WebhookRejected(f"bad callback configuration: {exc}", status_code=403) from None


def _open(crypt: MsgCrypt, query: Any, encrypted: str) -> bytes:
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


def _check_age(adapter: WeComAdapter, query: Any) -> None:
    limit = adapter.config.callback_max_age
    if not limit:
        return
    timestamp = query.get("timestamp") or ""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > limit:
        raise hub.WebhookRejected("callback timestamp missing or too old", status_code=403)


async def parse(adapter: WeComAdapter, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
    """The callback as canonical records, or :class:`hub.WebhookRejected`."""
    crypt = crypt_for(adapter)
    query = request.query
    if request.method.upper() == "GET":
        echo = _open(crypt, query, query.get("echostr") or "")
        _check_age(adapter, query)
        return hub.WebhookResult(body=echo, media_type="text/plain")
    try:
        outer = parse_flat(request.body)
    except XmlError as exc:
        raise hub.WebhookRejected(f"callback body refused: {exc}") from None
    if not outer.get("Encrypt"):
        raise hub.WebhookRejected("callback body has no Encrypt element")
    plain = _open(crypt, query, outer["Encrypt"])
    _check_age(adapter, query)
    try:
        message = parse_flat(plain)
    except XmlError as exc:
        raise hub.WebhookRejected(f"decrypted message refused: {exc}") from None
    dedupe_key = f"msg:{message['MsgId']}" if message.get("MsgId") else "evt:" + hashlib.sha256(plain).hexdigest()
    records: list[Record] = []
    if message.get("MsgType") == "event" and message.get("Event") == "change_external_contact":
        records = await _contact_change(adapter, account, message, dedupe_key)
    return hub.WebhookResult(events=records, dedupe_key=dedupe_key, body=b"", media_type="text/plain")


async def _contact_change(
    adapter: WeComAdapter, account: Account, event: dict[str, str], dedupe_key: str
) -> list[Record]:
    change = event.get("ChangeType", "")
    staff = event.get("UserID", "")
    customer = event.get("ExternalUserID", "")
    if not customer or not event.get("CreateTime", "").isdigit():
        raise hub.WebhookRejected("change_external_contact without ExternalUserID or CreateTime")
    at = from_epoch_seconds(event["CreateTime"])
    note = Message(
        platform=adapter.platform, account_id=account.account_id, platform_msg_id=dedupe_key,
        fan_uid=customer, direction=Direction.INBOUND, content_type=ContentType.EVENT, sent_at=at,
        body={k: event[k] for k in ("ChangeType", "UserID", "State", "WelcomeCode", "Source", "FailReason")
              if event.get(k)},
    )
    if change not in ADD_TYPES and change not in END_TYPES:
        return [note]  # transfer_fail and anything new: kept as an event, no fan change
    names = await adapter.tag_names()
    try:
        contact, follows = await adapter.customer(customer)
    except hub.PermanentError as exc:
        if exc.code not in GONE:
            raise
        contact, follows = {}, []
    ended: list[FollowRelation] = []
    if change in END_TYPES and staff:
        follows = [f for f in follows if f.get("userid") != staff]
        ended = [FollowRelation(staff_id=staff, ended_at=at)]
    if contact and (follows or ended):
        fan = fan_from_contact(account.account_id, contact, follows, names, ended=ended, platform=adapter.platform)
        return [fan, note]
    if change in END_TYPES and staff:  # nothing left to read: only what the event says
        fan = Fan(platform=adapter.platform, account_id=account.account_id, platform_uid=customer,
                  follow_state=FollowState.UNFOLLOWED, unfollowed_at=at, follows=ended)
        return [fan, note]
    if change != "edit_external_contact" and staff:  # an add whose customer cannot be read (yet)
        fan = Fan(platform=adapter.platform, account_id=account.account_id, platform_uid=customer,
                  follow_state=FollowState.FOLLOWING,
                  follows=[FollowRelation(staff_id=staff, followed_at=at, state=event.get("State") or None,
                                          ended_at=None)])
        return [fan, note]
    return [note]
