"""The WeCom sandbox's synthetic corp: staff, customers, relations and tags from one seed.

Some customers are followed by several staff, some carry a unionid (WeChat users only, type 1),
some have remark mobiles (a few of them not valid mobile numbers), and relations carry corp tags.
Relations live in ``relations[(external_userid, userid)]``; deleting one removes it, as the
platform does (the hub, not the platform, remembers that it ended).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BASE_TIME", "Corp", "TAG_GROUPS"]

BASE_TIME = 1_700_000_000
TAG_GROUPS = {
    "etSBXgrp1": ("客户等级", {"etSBXtag11": "普通", "etSBXtag12": "VIP", "etSBXtag13": "SVIP"}),
    "etSBXgrp2": ("来源", {"etSBXtag21": "门店", "etSBXtag22": "直播", "etSBXtag23": "朋友推荐"}),
}
ALL_TAGS = {tag_id: (gid, gname, name) for gid, (gname, tags) in TAG_GROUPS.items() for tag_id, name in tags.items()}


@dataclass
class Corp:
    """A deterministic synthetic corp of ``customers`` customers."""

    customers: int
    seed: int = 0
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    relations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    staff: list[str] = field(default_factory=list)
    _by_staff: dict[str, list[tuple[str, str]]] | None = field(default=None, repr=False)
    _by_customer: dict[str, list[str]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
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

    def _relation(self, rng: random.Random, staff: str, i: int, k: int) -> dict[str, Any]:
        mobiles: list[str] = []
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
