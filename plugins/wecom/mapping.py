"""WeCom customers (external contacts) as canonical fans.

One customer is one :class:`schemas.Fan` keyed by ``external_userid``; each staff member who
follows the customer is one :class:`schemas.FollowRelation` (``follow_user`` in
``externalcontact/get``, ``follow_info`` in ``batch/get_by_user``).  Relations the platform no
longer lists, and relations a ``del_*`` callback ended, carry ``ended_at``.

Two shapes of fan:

- :func:`fan_from_contact`: the customer read whole (``externalcontact/get``, a callback): every
  field, including those that sum up all relations (``tags``, ``phone``, ``followed_at``);
- :func:`fan_from_page`: what one ``batch/get_by_user`` page knows of a customer, some of its
  relations.  WeCom keeps remarks, tags and remark mobiles per relation, so the page's relations
  are complete in themselves and the hub merges ``follows`` by ``staff_id`` across pages.  The
  fields that sum up *all* relations (``tags``, ``followed_at``, the one ``phone``) are left unset,
  since a page cannot know them and two pages would write two answers; every remark mobile goes to
  ``other_phones`` instead (kept as hashed identity keys, which accumulate and are matched like
  the phone when members are stitched).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from schemas import Fan, FollowRelation, FollowState, Gender, from_epoch_seconds, normalise_phone

__all__ = ["GENDERS", "TagNames", "fan_from_contact", "fan_from_page", "first_phone", "group_pairs", "relation",
           "remark_phones", "tag_names_of"]

GENDERS = {0: Gender.UNKNOWN, 1: Gender.MALE, 2: Gender.FEMALE}
"""``external_contact.gender``: 0 unknown, 1 male, 2 female."""

TagNames = Mapping[str, str]
"""Corp tag id → tag name, from ``externalcontact/get_corp_tag_list``."""


def _tag_ids(follow: Mapping[str, Any]) -> list[str]:
    if follow.get("tags"):  # externalcontact/get: tag objects
        return [str(t["tag_id"]) for t in follow["tags"] if t.get("tag_id")]
    return [str(t) for t in follow.get("tag_id") or []]  # batch/get_by_user: ids only


def tag_names_of(follow: Mapping[str, Any], names: TagNames) -> list[str]:
    """The tag names of one relation: from the corp tag list, else from the tag objects themselves."""
    inline = {str(t.get("tag_id")): t.get("tag_name") for t in follow.get("tags") or []}
    out = []
    for tag_id in _tag_ids(follow):
        name = names.get(tag_id) or inline.get(tag_id)
        if name:
            out.append(name)
    return out


def relation(follow: Mapping[str, Any]) -> FollowRelation:
    """One staff member's follow relation, active (``ended_at`` explicitly ``None``)."""
    created = follow.get("createtime")
    return FollowRelation(
        staff_id=follow["userid"],
        followed_at=from_epoch_seconds(created) if created else None,
        remark=follow.get("remark") or None,
        tag_ids=_tag_ids(follow),
        add_way=follow.get("add_way"),
        state=follow.get("state") or None,
        ended_at=None,
    )


def remark_phones(follows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every remark mobile, over the relations in order, that is a mainland mobile number, once."""
    found: list[str] = []
    for follow in follows:
        for mobile in follow.get("remark_mobiles") or []:
            try:
                number = normalise_phone(mobile)
            except ValueError:
                continue
            if number not in found:
                found.append(number)
    return found


def first_phone(follows: Iterable[Mapping[str, Any]]) -> str | None:
    """The first remark mobile, over the relations in order, that is a mainland mobile number."""
    phones = remark_phones(follows)
    return phones[0] if phones else None


def fan_from_contact(
    account_id: str,
    contact: Mapping[str, Any],
    follows: list[Mapping[str, Any]],
    names: TagNames,
    *,
    ended: Iterable[FollowRelation] = (),
    platform: str = "wecom",
) -> Fan:
    """The fan of one customer with its relations.

    :param account_id: the hub account.
    :param contact: ``external_contact`` as the platform sent it.
    :param follows: the customer's active relations (``follow_user`` / ``follow_info`` items).
    :param names: corp tag id → name.
    :param ended: relations known to have ended (from a callback), kept with their ``ended_at``.
    :param platform: the platform name.
    """
    follows = sorted(follows, key=lambda f: f["userid"])
    active = [relation(f) for f in follows]
    active_ids = {r.staff_id for r in active}
    relations = active + [r for r in ended if r.staff_id not in active_ids]
    tags: list[str] = []
    for follow in follows:
        tags += [n for n in tag_names_of(follow, names) if n not in tags]
    times = [r.followed_at for r in active if r.followed_at is not None]
    ended_times: list[datetime] = [r.ended_at for r in relations if r.ended_at is not None]
    following = bool(active)
    return Fan(
        platform=platform,
        account_id=account_id,
        platform_uid=contact["external_userid"],
        union_id=contact.get("unionid") or None,
        phone=first_phone(follows),
        other_phones=remark_phones(follows)[1:],
        nickname=contact.get("name") or None,
        avatar_url=contact.get("avatar") or None,
        gender=GENDERS.get(contact.get("gender", 0), Gender.UNKNOWN),
        follow_state=FollowState.FOLLOWING if following else FollowState.UNFOLLOWED,
        followed_at=min(times) if times else None,
        unfollowed_at=None if following or not ended_times else max(ended_times),
        tags=tags,
        follows=relations,
    )


def group_pairs(
    entries: Iterable[Mapping[str, Any]],
) -> dict[str, tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    """``batch/get_by_user``'s items (one per customer and staff member) grouped by customer, in
    the order they came: ``{external_userid: (external_contact, [follow_info, ...])}``."""
    grouped: dict[str, tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = {}
    for entry in entries:
        contact = entry["external_contact"]
        grouped.setdefault(contact["external_userid"], (contact, []))[1].append(entry["follow_info"])
    return grouped


def fan_from_page(
    account_id: str, contact: Mapping[str, Any], follows: list[Mapping[str, Any]], *, platform: str = "wecom",
) -> dict[str, Any]:
    """The fields of one customer that one ``batch/get_by_user`` page knows, for ``Fan.many``.

    Only the fields set here are written, so a page that holds some of a customer's relations
    never erases what another page wrote, and a second pass writes what the first did: the
    contact's own fields, ``following``, the page's relations (merged by ``staff_id``) and their
    remark mobiles as ``other_phones``.  ``tags``, ``followed_at`` and ``phone`` sum up every
    relation and are left to a whole read (:func:`fan_from_contact`).

    :param account_id: the hub account.
    :param contact: ``external_contact`` as the platform sent it.
    :param follows: the customer's relations on this page (``follow_info`` items).
    :param platform: the platform name.
    """
    follows = sorted(follows, key=lambda f: f["userid"])
    fields: dict[str, Any] = {
        "platform": platform,
        "account_id": account_id,
        "platform_uid": contact["external_userid"],
        "union_id": contact.get("unionid") or None,
        "nickname": contact.get("name") or None,
        "avatar_url": contact.get("avatar") or None,
        "gender": GENDERS.get(contact.get("gender", 0), Gender.UNKNOWN),
        "follow_state": FollowState.FOLLOWING,
        "follows": [relation(f) for f in follows],
    }
    phones = remark_phones(follows)
    if phones:
        fields["other_phones"] = phones
    return fields
