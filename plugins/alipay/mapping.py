"""Alipay JSON → canonical records, and canonical cards → Alipay's ``MerchantCard``; pure functions.

The activation flow's answers (``alipay.system.oauth.token``, ``activateform.query``) become one
:class:`schemas.Fan` keyed by the user's ``open_id`` (``user_id``, the legacy 2088… id, when
there is no ``open_id``), carrying the phone from the form and an active card whose number is
not known yet: :func:`pending_card_no` (``open-pending:<user>``).  The hub stitches the fan, makes
the card the member's and queues the member's balance for it; the push opens the card
(``card.open`` with ``external_card_no`` = the member id) and returns its ``biz_card_no``,
which the hub records in place of the pending number.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas import CardStatus, Fan, MemberCard, normalise_phone

__all__ = [
    "PLATFORM",
    "CardHolder",
    "activation_fan",
    "card_holder",
    "card_info",
    "card_user_info",
    "external_card_no",
    "form_values",
    "level_name",
    "notify_fan",
    "open_ext_info",
    "out_serial_no",
    "pending_card_no",
    "pending_holder",
    "points_text",
    "uid_user",
    "user_key",
]

PLATFORM = "alipay"
PENDING = "open-pending:"
"""The prefix of a card number that stands for a card still to be opened for the user after it."""
LEGACY_USER_ID = re.compile(r"2088\d{12}")


def user_key(node: Mapping[str, Any]) -> str | None:
    """The user's key in the hub: ``open_id``, else the legacy ``user_id``."""
    value = node.get("open_id") or node.get("user_id")
    return str(value) if value else None


def card_user_info(node: Mapping[str, Any]) -> dict[str, str]:
    """``card_user_info`` for ``card.open`` / ``card.query``: the ``open_id``, else the
    ``user_id`` as ``user_uni_id`` of type ``UID``."""
    if node.get("open_id"):
        return {"open_id": str(node["open_id"])}
    return {"user_uni_id": str(node["user_id"]), "user_uni_id_type": "UID"}


def form_values(infos: Any) -> dict[str, str]:
    """The activation form's fields (``OPEN_FORM_FIELD_MOBILE`` → value) from ``infos``.

    ``infos`` is "a JSON array of the values of the form's fields", sent as a string; each
    element is read as ``{"FIELD": "value"}`` (one or more fields) or ``{"name"|"key": …, "value": …}``.
    """
    if isinstance(infos, str):
        try:
            infos = json.loads(infos) if infos.strip() else []
        except ValueError:
            return {}
    items = infos if isinstance(infos, list) else [infos]
    values: dict[str, str] = {}
    for item in items:
        if not isinstance(item, Mapping):
            continue
        name = item.get("name") or item.get("key")
        if isinstance(name, str) and "value" in item:
            values[name] = str(item["value"])
            continue
        values.update({str(k): str(v) for k, v in item.items() if isinstance(v, str | int)})
    return values


def _phone(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalise_phone(value)
    except ValueError:
        return None  # not a mainland mobile number: kept nowhere


def external_card_no(member_id: int) -> str:
    """The merchant card number sent on ``card.open``: the hub's member id."""
    return str(member_id)


def out_serial_no(member_id: int, uid: str) -> str:
    """``out_serial_no`` of opening ``uid``'s card for ``member_id``: the same on every retry."""
    return "SYO" + hashlib.sha256(f"{member_id}\x00{uid}".encode()).hexdigest()[:29]


def pending_card_no(uid: str) -> str:
    """The card number of an activated card not opened yet: ``open-pending:<user>``."""
    return PENDING + uid


def pending_holder(card_no: str) -> str | None:
    """The user a :func:`pending_card_no` stands for (``None`` for a real card number)."""
    return card_no[len(PENDING):] or None if card_no.startswith(PENDING) else None


def uid_user(uid: str, known: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The user ``uid`` as the token answer names them: ``known`` (what Alipay said) when it
    names them, else ``user_id`` for a legacy 2088… id and ``open_id`` for anything else."""
    if known and user_key(known) == uid:
        return {k: str(known[k]) for k in ("open_id", "user_id") if known.get(k)}
    return {"user_id": uid} if LEGACY_USER_ID.fullmatch(uid) else {"open_id": uid}


def open_ext_info(card: MemberCard, names: Sequence[str], *, open_date: str, valid_date: str) -> dict[str, str]:
    """``card_ext_info`` of ``card.open``: the member id as ``external_card_no``, the dates, and
    the member's unified balance and level, so the card shows them from the start."""
    return {"external_card_no": external_card_no(card.member_id), "open_date": open_date, "valid_date": valid_date,
            **card_info(card, names)}


def activation_fan(account_id: str, user: Mapping[str, Any], form: Mapping[str, str], *, phone_field: str) -> Fan:
    """The fan an activation made: keyed by the user, with the form's phone and a card to open.

    :param account_id: the hub's account.
    :param user: who ``alipay.system.oauth.token`` says the user is (``open_id`` and/or ``user_id``).
    :param form: :func:`form_values` of ``activateform.query``.
    :param phone_field: the form field holding the phone (``OPEN_FORM_FIELD_MOBILE``).
    """
    uid = user_key(user)
    if uid is None:
        raise ValueError("the token answer names no open_id or user_id")
    fields: dict[str, Any] = {"platform": PLATFORM, "account_id": account_id, "platform_uid": uid,
                              "card_no": pending_card_no(uid), "card_status": CardStatus.ACTIVE}
    phone = _phone(form.get(phone_field))
    if phone:
        fields["phone"] = phone
    if user.get("user_id"):
        fields["identity_keys"] = {"alipay_user_id": str(user["user_id"])}
    return Fan(**fields)


def notify_fan(account_id: str, fields: Mapping[str, Any], status: CardStatus) -> Fan | None:
    """The fan a card open/delete notify speaks of (``None`` when it names no user)."""
    uid = user_key(fields)
    if uid is None:
        return None
    record: dict[str, Any] = {"platform": PLATFORM, "account_id": account_id, "platform_uid": uid,
                              "card_status": status}
    if fields.get("biz_card_no"):
        record["card_no"] = str(fields["biz_card_no"])
    if fields.get("user_id"):
        record["identity_keys"] = {"alipay_user_id": str(fields["user_id"])}
    return Fan(**record)


def points_text(balance: int) -> str:
    """``point`` as Alipay wants it: a number with two decimals (``1234`` → ``"1234.00"``)."""
    return f"{balance}.00"


def level_name(level: int, names: Sequence[str]) -> str:
    """The template's level for the hub's ``level``: ``names[level]`` (the last name beyond the
    list), or the number itself when no names are configured."""
    if not names:
        return str(level)
    return names[min(level, len(names) - 1)]


def card_info(card: MemberCard, names: Sequence[str]) -> dict[str, str]:
    """``card_info`` of ``card.update``: the unified balance and the level (whole values)."""
    return {"point": points_text(card.balance), "level": level_name(card.level, names)}


@dataclass(frozen=True)
class CardHolder:
    """A card as ``alipay.marketing.card.query`` shows it, to compare with the ledger.

    :param biz_card_no: Alipay's card number.
    :param point: the balance the card shows (text, as Alipay keeps it).
    :param level: the level it shows.
    :param in_wallet: ``schema_url`` is set: the card is in the user's wallet.
    """

    biz_card_no: str
    point: str | None
    level: str | None
    external_card_no: str | None
    in_wallet: bool

    def points(self) -> int | None:
        """The balance as whole points (``None`` when absent or not a number)."""
        try:
            return round(float(self.point)) if self.point not in (None, "") else None
        except ValueError:
            return None


def card_holder(biz_card_no: str, node: Mapping[str, Any]) -> CardHolder:
    """``card.query``'s answer as a :class:`CardHolder`."""
    info = node.get("card_info") if isinstance(node.get("card_info"), Mapping) else {}
    return CardHolder(biz_card_no=str(info.get("biz_card_no") or biz_card_no),
                      point=str(info["point"]) if info.get("point") is not None else None,
                      level=str(info["level"]) if info.get("level") is not None else None,
                      external_card_no=str(info["external_card_no"]) if info.get("external_card_no") else None,
                      in_wallet=bool(node.get("schema_url")))
