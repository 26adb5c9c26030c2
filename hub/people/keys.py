"""What identifies a person: the identity keys of a fan.

A fan's keys are its phone hash (``phone``; another number of the person, from
``Fan.other_phones``, counts as a phone too), its union id namespaced by platform family
(``wechat_union_id`` for WeCom and WeChat, ``douyin_union_id`` …), the keys in
``fan.identity_keys`` and whatever ``identity_keys`` hook implementations add.  Blank, ``null``,
``-1``, all-zero and similar placeholder values are never keys.  Stitching
(:mod:`hub.people.identity`) joins the fans that share a key.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import Any

from schemas import Fan

__all__ = ["PLACEHOLDERS", "UNION_FAMILIES", "Key", "fan_keys", "hook_keys", "usable"]

Key = tuple[str, str]
"""``(kind, value)``."""

PLACEHOLDERS = {"null", "none", "nil", "undefined", "unknown", "n/a", "na", "-1", "test", "anonymous"}
_FILLER = frozenset("0-_. ")
UNION_FAMILIES = {"wecom": "wechat", "wechat": "wechat", "weixin": "wechat"}


def usable(value: object) -> str | None:
    """The value as a key, or ``None`` for blanks and placeholders (``null``, ``-1``, ``0000``…)."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    chars = set(text)
    if len(chars) == 1 or chars <= _FILLER or text.lower() in PLACEHOLDERS:
        return None
    return text if len(text) <= 191 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def fan_keys(fan: Any, extra: Iterable[tuple[str, str]] = ()) -> set[Key]:
    """The identity keys of a fan row (or canonical :class:`schemas.Fan` plus its phone hash).

    :param fan: anything with ``platform``, ``union_id``, ``phone_hash`` and ``identity_keys``.
    :param extra: ``(kind, value)`` pairs contributed by the ``identity_keys`` hook.
    """
    found: set[Key] = set()
    pairs: list[tuple[str, object]] = [("phone", getattr(fan, "phone_hash", None))]
    if getattr(fan, "union_id", None) is not None:
        pairs.append((f"{UNION_FAMILIES.get(fan.platform, fan.platform)}_union_id", fan.union_id))
    pairs.extend((getattr(fan, "identity_keys", None) or {}).items())
    pairs.extend(extra)
    for kind, value in pairs:
        value_text = usable(value)
        if value_text is None:
            continue
        kind_text = _kind(kind)
        if kind_text:
            found.add((kind_text, value_text))
    return found


@functools.lru_cache(maxsize=1_024)
def _kind(kind: object) -> str | None:
    """A key's kind, normalised (there are few: phone, union ids, the platforms' user ids)."""
    if isinstance(kind, str) and kind.startswith("phone:"):
        kind = "phone"  # another number of the person (Fan.other_phones), hashed like the phone
    text = usable(kind)
    return text[:64] if text else None


def hook_keys(host: Any, row: Any) -> list[tuple[str, str]]:
    """The keys ``identity_keys`` hook implementations add for a fan row (none without a host)."""
    if host is None or not host.hook.identity_keys.get_hookimpls():
        return []
    fan = Fan(platform=row.platform, account_id=row.account_id, platform_uid=row.platform_uid,
              union_id=row.union_id, identity_keys=dict(row.identity_keys or {}))
    out: list[tuple[str, str]] = []
    for contributed in host.hook.identity_keys(fan=fan):
        out.extend((str(k), str(v)) for k, v in contributed or [])
    return out
