"""The WeCom sandbox's synthetic corp (staff, customers, relations and tags from one seed) and its
settings (credentials, limits, faults).

Some customers are followed by several staff, some carry a unionid (WeChat users only, type 1),
some have remark mobiles (a few of them not valid mobile numbers), and relations carry corp tags.
Relations live in ``relations[(external_userid, userid)]``; deleting one removes it, as the
platform does (the hub, not the platform, remembers that it ended).

Given shared ``people`` (a :class:`hub.Population`), the customers are the people who are WeCom
customers: WeChat users (type 1) carrying the person's unionid and name, the person's mobile in
the remark mobiles of each relation where the staff wrote it down (``wecom_mobile``).
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import hub
from plugins.wecom.wire import PATHS, MsgCrypt, envelope, message_xml

__all__ = ["BASE_TIME", "FAULT_KINDS", "TAG_GROUPS", "Corp", "Settings", "account_settings", "sample_callback"]

FAULT_KINDS = ("freq", "busy", "http500")
"""The faults of fault mode: errcode 45009, errcode -1, HTTP 500."""


@dataclass
class Settings:
    """The sandbox corp's credentials and knobs (deterministic from the seed).

    :param token_ttl: the corp token's life in seconds (``expires_in``); 42001 once it is over.
    :param per_minute: calls each API allows per ``minute_seconds`` (45009 beyond, one window's block).
    :param fault_rate: the probability that any corp request (tokens included) fails, as one of
        ``fault_kinds``, drawn from a generator seeded with ``fault_seed`` (default: ``seed``).
    :param latency: seconds each corp API answer is delayed.
    """

    seed: int = 0
    corp_id: str = "wwsandbox0000001"
    secret: str = "sandbox-secret-0123456789abcdef"
    agent_id: int = 1000002
    token: str = "SandboxTok3n"
    encoding_aes_key: str = ""
    token_ttl: int = 7200
    per_minute: int = 10_000
    minute_seconds: float = 60.0
    detail_page: int = 500
    welcome_ttl: float = 20.0
    callback_url: str | None = None
    mp_app_id: str = "wxsandboxmp000001"
    mp_app_secret: str = "sandbox-mp-secret-0123456789ab"
    card_id: str = "pSBXmembercard0000000000001"
    mp_token_ttl: int = 7200
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    fault_seed: int | None = None
    latency: float = 0.0

    def __post_init__(self) -> None:
        if not self.encoding_aes_key:
            # 43 characters of [A-Za-z0-9], as the platform requires
            self.encoding_aes_key = hashlib.sha256(f"wecom-sandbox-{self.seed}".encode()).hexdigest()[:43]

BASE_TIME = 1_700_000_000
TAG_GROUPS = {
    "etSBXgrp1": ("客户等级", {"etSBXtag11": "普通", "etSBXtag12": "VIP", "etSBXtag13": "SVIP"}),
    "etSBXgrp2": ("来源", {"etSBXtag21": "门店", "etSBXtag22": "直播", "etSBXtag23": "朋友推荐"}),
}
ALL_TAGS = {tag_id: (gid, gname, name) for gid, (gname, tags) in TAG_GROUPS.items() for tag_id, name in tags.items()}


def account_settings(base_url: str, settings: Settings, account_id: str = "sandbox") -> dict[str, Any]:
    """The ``[[accounts]]`` entry for a sandbox at ``base_url``, its client limits matching the sandbox's."""
    limit = [float(settings.per_minute), float(settings.minute_seconds)]
    return {"platform": "wecom", "id": account_id, "base_url": base_url, "corp_id": settings.corp_id,
            "secret": settings.secret, "agent_id": settings.agent_id, "token": settings.token,
            "encoding_aes_key": settings.encoding_aes_key,
            "mp_app_id": settings.mp_app_id, "mp_app_secret": settings.mp_app_secret, "card_id": settings.card_id,
            "mp_base_url": base_url,
            "rate_limits": {path: limit for key, path in PATHS.items() if key != "token"}}

def sample_callback(crypt: MsgCrypt, settings: Settings, event: dict[str, str | int]) -> tuple[dict[str, str], bytes]:
    """``(query, body)`` of one event as WeCom delivers it: encrypted, enveloped and signed."""
    encrypted = crypt.encrypt(message_xml(event))
    timestamp = str(int(time.time()))
    nonce = str(random.randrange(10**9))
    query = {"msg_signature": crypt.sign(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    return query, envelope(settings.corp_id, encrypted, settings.agent_id)


@dataclass
class Corp:
    """A deterministic synthetic corp of ``customers`` customers."""

    customers: int
    seed: int = 0
    people: hub.Population | None = None
    """Shared people: the customers are those of them who are WeCom customers (``customers`` is
    then their number)."""
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    relations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    staff: list[str] = field(default_factory=list)
    _by_staff: dict[str, list[tuple[str, str]]] | None = field(default=None, repr=False)
    _by_customer: dict[str, list[str]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        if self.people is not None:
            self._from_people(rng, [p for p in self.people if p.wecom_customer])
            return
        self.staff = [f"staff{i:04d}" for i in range(max(3, self.customers // 150))]
        for i in range(self.customers):
            uid = f"wmSBX{self.seed % 1000:03d}{i:08d}"
            wechat = rng.random() < 0.85
            contact: dict[str, Any] = {
                "external_userid": uid,
                "name": f"客户{i}",
                "avatar": f"https://wework.example/avatar/{i}.png",
                "type": 1 if wechat else 2,
                "gender": rng.choice([0, 1, 2]),
            }
            if wechat and rng.random() < 0.5:
                contact["unionid"] = f"oSBXunion{self.seed % 1000:03d}{i:08d}"
            if not wechat:
                contact["corp_name"] = "合作企业"
            self.contacts[uid] = contact
            owners = [self.staff[i % len(self.staff)]]
            if rng.random() < 0.12:
                owners += rng.sample([s for s in self.staff if s != owners[0]], k=rng.choice([1, 2]))
            for k, staff in enumerate(owners):
                self.relations[(uid, staff)] = self._relation(rng, staff, i, k)

    def _from_people(self, rng: random.Random, customers: list[hub.Person]) -> None:
        self.customers = len(customers)
        self.staff = [f"staff{i:04d}" for i in range(max(3, self.customers // 150))]
        for n, person in enumerate(customers):
            i = person.index
            uid = f"wmSBX{self.seed % 1000:03d}{i:08d}"
            self.contacts[uid] = {"external_userid": uid, "name": person.name,
                                  "avatar": f"https://wework.example/avatar/{i}.png", "type": 1,
                                  "gender": rng.choice([0, 1, 2]), "unionid": person.wechat_unionid}
            owners = [self.staff[n % len(self.staff)]]
            if rng.random() < 0.12:
                owners += rng.sample([s for s in self.staff if s != owners[0]], k=rng.choice([1, 2]))
            for k, staff in enumerate(owners):
                relation = self._relation(rng, staff, i, k, mobiles=[])
                if person.wecom_mobile and (k == 0 or rng.random() < 0.5):
                    relation["remark_mobiles"] = [person.mobile]
                self.relations[(uid, staff)] = relation

    def _relation(self, rng: random.Random, staff: str, i: int, k: int,
                  mobiles: list[str] | None = None) -> dict[str, Any]:
        if mobiles is None:
            mobiles = []
            roll = rng.random()
            if roll < 0.2:
                mobiles = [f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"]
            elif roll < 0.23:
                mobiles = ["0755-8888888", f"139{rng.randrange(10**8):08d}"]
        tags = rng.sample(sorted(ALL_TAGS), k=rng.choice([0, 1, 1, 2]))
        return {
            "userid": staff,
            "remark": f"备注{i}" if rng.random() < 0.3 else "",
            "description": "",
            "createtime": BASE_TIME + i * 37 + k * 5,
            "tag_id": tags,
            "remark_corp_name": "",
            "remark_mobiles": mobiles,
            "oper_userid": staff,
            "add_way": rng.choice([1, 2, 3, 5, 16]),
            "state": "sbx-qrcode" if rng.random() < 0.1 else "",
        }

    def _index(self) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[str]]]:
        if self._by_staff is None or self._by_customer is None:
            by_staff: dict[str, list[tuple[str, str]]] = {}
            by_customer: dict[str, list[str]] = {}
            for key in sorted(self.relations, key=lambda k: (self.relations[k]["createtime"], k)):
                by_staff.setdefault(key[1], []).append(key)
                by_customer.setdefault(key[0], []).append(key[1])
            self._by_staff, self._by_customer = by_staff, by_customer
        return self._by_staff, self._by_customer

    def pairs_of(self, staff: str) -> list[tuple[str, str]]:
        """``(external_userid, userid)`` of one staff member, oldest relation first."""
        return self._index()[0].get(staff, [])

    def batch_page(self, users: list[str], cursor: str, limit: int) -> tuple[list[dict[str, Any]], str] | None:
        """One ``batch/get_by_user`` page of the relations of ``users`` (each one's oldest first)
        and its ``next_cursor`` (empty at the end); ``None`` for a cursor not of this chunk."""
        pairs = [pair for user in users for pair in self.pairs_of(user)]
        offset = _cursor_offset(cursor, users)
        if offset is None or offset > len(pairs):
            return None
        page = pairs[offset:offset + limit]
        end = offset + len(page)
        items = [{"external_contact": self.contacts[uid], "follow_info": self.follow_info((uid, staff))}
                 for uid, staff in page]
        return items, _make_cursor(end, users) if end < len(pairs) else ""

    def follow_info(self, key: tuple[str, str]) -> dict[str, Any]:
        """A relation as ``batch/get_by_user`` writes it (tag ids only)."""
        return dict(self.relations[key])

    def follow_user(self, key: tuple[str, str]) -> dict[str, Any]:
        """A relation as ``externalcontact/get`` writes it (tag objects)."""
        item = dict(self.relations[key])
        tag_ids = item.pop("tag_id")
        item["tags"] = [{"group_name": ALL_TAGS[t][1], "tag_name": ALL_TAGS[t][2], "tag_id": t, "type": 1}
                        for t in tag_ids]
        return item

    def followers_of(self, external_userid: str) -> list[str]:
        return sorted(self._index()[1].get(external_userid, []))

    def remove(self, external_userid: str, staff: str) -> bool:
        """End a relation (the platform forgets it); ``False`` when there was none."""
        self._by_staff = self._by_customer = None
        return self.relations.pop((external_userid, staff), None) is not None

    def add(self, external_userid: str, staff: str, at: int, state: str = "") -> None:
        """A new relation (a new customer is created when the id is unknown)."""
        self._by_staff = self._by_customer = None
        if external_userid not in self.contacts:
            self.contacts[external_userid] = {"external_userid": external_userid, "name": "新客户",
                                              "avatar": "", "type": 1, "gender": 0}
        self.relations[(external_userid, staff)] = {
            "userid": staff, "remark": "", "description": "", "createtime": at, "tag_id": [],
            "remark_corp_name": "", "remark_mobiles": [], "oper_userid": staff, "add_way": 1, "state": state,
        }
        if staff not in self.staff:
            self.staff.append(staff)

    def tag_groups(self) -> list[dict[str, Any]]:
        return [{"group_id": gid, "group_name": gname, "create_time": BASE_TIME, "order": n,
                 "tag": [{"id": tid, "name": name, "create_time": BASE_TIME, "order": m}
                         for m, (tid, name) in enumerate(tags.items())]}
                for n, (gid, (gname, tags)) in enumerate(TAG_GROUPS.items())]


def _make_cursor(offset: int, users: list[str]) -> str:
    # the sandbox's own opaque cursor: an offset bound to the userid chunk
    digest = hashlib.sha1("|".join(users).encode()).hexdigest()[:8]
    return base64.urlsafe_b64encode(f"{offset}:{digest}".encode()).decode()


def _cursor_offset(cursor: str, users: list[str]) -> int | None:
    if not cursor:
        return 0
    try:
        offset, digest = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        expected = hashlib.sha1("|".join(users).encode()).hexdigest()[:8]
        return int(offset) if digest == expected else None
    except (ValueError, UnicodeDecodeError):
        return None
