"""One shared population for every sandbox: the same people on several platforms.

A brand's shoppers are the same people wherever they meet it: one follows the brand's Douyin
企业号, is a WeCom customer of a store's staff, buys in the Kuaishou and Xiaohongshu shops and
holds the Alipay member card.  :func:`population` generates such people from a seed, and every
sandbox given them draws its fans, customers, buyers and card holders from them, so that a
demo or a test that syncs all the sandboxes into one database sees the same person on several
platforms, the way the population says.

Each :class:`Person` has a phone (a valid mainland mobile, unique in the population), a WeChat
``unionid``, a Douyin ``union_id`` where they have one, a name, and traits a sandbox may use:
whether they follow the 企业号 (and joined its 来客 membership), are a WeCom customer (and
whether the staff wrote their mobile in the remark), how many orders they placed in the Kuaishou
and Xiaohongshu shops (and whether a receiver phone a shop may decrypt is on them), whether they
hold the Alipay card.  How often these occur (:data:`RATES`): about six in ten people are on two
platforms or more, a few in a hundred on all five.  :attr:`Person.phone_platforms` says where the
phone shows, so where a hub can recognise the person.

The same ``(seed, size)`` give the same people, and a larger population begins with the smaller
one: ``population(seed, n)[:k] == population(seed, k)[:]``.  Generation is one pass over a seeded
generator, stdlib only (100,000 people in a fraction of a second).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

__all__ = ["PLATFORMS", "RATES", "Person", "Population", "population"]

PLATFORMS = ("alipay", "douyin", "kuaishou", "wecom", "xiaohongshu")
"""The platforms a person of the population may be on (sorted)."""

RATES = {
    "douyin": 0.50,                 # follows the brand's 企业号
    "wecom": 0.45,                  # a WeCom customer of a store's staff
    "kuaishou": 0.30,               # bought in the Kuaishou shop
    "xiaohongshu": 0.30,            # bought in the Xiaohongshu shop
    "alipay": 0.35,                 # holds the Alipay member card
    "everywhere": 0.03,             # loyal shoppers on all five
    "douyin_union_id": 0.80,        # a Douyin follower with a union_id
    "douyin_member": 0.50,          # a Douyin follower who joined the 来客 membership with their phone
    "wecom_mobile": 0.70,           # the staff wrote the customer's mobile in the remark
    "kuaishou_phone": 0.70,         # the Kuaishou orders carry an (encrypted) receiver phone
    "xiaohongshu_phone": 0.50,      # an order awaiting shipment, its receiver readable
}
"""The probabilities the population is drawn with (each platform independently; a person drawn
on none is put on one, so that everyone is somewhere)."""

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉玲婷雪慧晨宇浩然欣怡子轩梓涵思雨嘉文博"
_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "157",
             "158", "159", "166", "176", "177", "178", "180", "181", "182", "185", "186", "187", "188", "189",
             "191", "198", "199")
_SPREAD = 48_271_249
"""Odd and not a multiple of 5: ``index * _SPREAD mod 10**8`` is a permutation of 8-digit suffixes."""


@dataclass(frozen=True, slots=True)
class Person:
    """One person of the population.

    :param index: the person's place in the population (0-based).
    :param name: a Chinese name (not unique).
    :param phone: the person's mobile, normalised (``+86`` and 11 digits), unique in the population.
    :param wechat_unionid: the person's WeChat ``unionid`` (what WeCom shows for a WeChat customer).
    :param douyin_union_id: the person's Douyin ``union_id``, or ``None``.
    :param douyin_follower: follows the brand's Douyin 企业号.
    :param douyin_member: a follower who joined the brand's 来客 membership; Douyin tells the phone
        they joined with in the ``life_member_join`` callback (its fans list has none).
    :param wecom_customer: a WeCom external contact of a store's staff.
    :param wecom_mobile: the staff wrote the person's mobile in the relation's remark mobiles.
    :param kuaishou_orders: orders placed in the Kuaishou shop (0: not a buyer there).
    :param kuaishou_phone: those orders carry the person's phone as an encrypted receiver mobile.
    :param xiaohongshu_orders: orders placed in the Xiaohongshu shop (0: not a buyer there).
    :param xiaohongshu_phone: one of those orders awaits shipment, its receiver (the person's phone)
        readable and decryptable.
    :param alipay_card: holds the brand's Alipay member card (the phone filled in its activation form).
    """

    index: int
    name: str
    phone: str
    wechat_unionid: str
    douyin_union_id: str | None
    douyin_follower: bool
    douyin_member: bool
    wecom_customer: bool
    wecom_mobile: bool
    kuaishou_orders: int
    kuaishou_phone: bool
    xiaohongshu_orders: int
    xiaohongshu_phone: bool
    alipay_card: bool

    @property
    def mobile(self) -> str:
        """The 11 digits, as platforms write a mainland mobile."""
        return self.phone[3:]

    @property
    def platforms(self) -> frozenset[str]:
        """The platforms the person is on."""
        return frozenset(p for p, on in (("alipay", self.alipay_card), ("douyin", self.douyin_follower),
                                         ("kuaishou", self.kuaishou_orders > 0), ("wecom", self.wecom_customer),
                                         ("xiaohongshu", self.xiaohongshu_orders > 0)) if on)

    @property
    def phone_platforms(self) -> frozenset[str]:
        """The platforms whose records of the person carry the phone (the key that lets a hub
        recognise the person across platforms): the WeCom remark mobile, the Kuaishou and
        Xiaohongshu receiver phones as a sync reads them, the Alipay activation form and the
        Douyin 来客 membership callback as the platforms send them."""
        return frozenset(p for p, on in (("alipay", self.alipay_card), ("douyin", self.douyin_member),
                                         ("kuaishou", self.kuaishou_orders > 0 and self.kuaishou_phone),
                                         ("wecom", self.wecom_customer and self.wecom_mobile),
                                         ("xiaohongshu", self.xiaohongshu_orders > 0 and self.xiaohongshu_phone))
                         if on)

    def on(self, platform: str) -> bool:
        """Whether the person is on ``platform``."""
        return platform in self.platforms


class Population(Sequence[Person]):
    """The people of one ``(seed, size)``: a sequence of :class:`Person`, ``population[i].index == i``."""

    __slots__ = ("_people", "seed")

    def __init__(self, seed: int, people: list[Person]) -> None:
        self.seed = seed
        self._people = people

    @overload
    def __getitem__(self, i: int) -> Person: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Person]: ...
    def __getitem__(self, i: int | slice) -> Person | Sequence[Person]:
        return self._people[i]

    def __len__(self) -> int:
        return len(self._people)

    def __iter__(self) -> Iterator[Person]:
        return iter(self._people)

    def __repr__(self) -> str:
        return f"Population(seed={self.seed}, size={len(self)})"

    def on(self, platform: str) -> list[Person]:
        """The people on ``platform``, in population order."""
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}; the population knows {', '.join(PLATFORMS)}")
        return [p for p in self._people if platform in p.platforms]

    def overlap(self) -> dict[int, int]:
        """How many people are on exactly ``k`` platforms, for each ``k`` that occurs."""
        return dict(sorted(Counter(len(p.platforms) for p in self._people).items()))


def population(seed: int, size: int) -> Population:
    """The ``size`` people of ``seed``: the same arguments give the same people.

    :param seed: the seed of the generator.
    :param size: how many people (0 or more).
    :raises ValueError: ``size`` is negative or above 10**8 (phones would repeat).
    """
    if not 0 <= size <= 10**8:
        raise ValueError(f"a population holds 0 to 100,000,000 people, not {size}")
    rng = random.Random(seed)
    draw, bits = rng.random, rng.getrandbits
    p_all, p_dy, p_wc, p_ks, p_xhs, p_ali = (RATES[k] for k in ("everywhere", "douyin", "wecom", "kuaishou",
                                                                "xiaohongshu", "alipay"))
    p_union, p_member, p_wm, p_kp, p_xp = (RATES[k] for k in ("douyin_union_id", "douyin_member", "wecom_mobile",
                                                              "kuaishou_phone", "xiaohongshu_phone"))
    surnames, given, prefixes = _SURNAMES, _GIVEN, _PREFIXES
    n_sur, n_given, n_pre = len(surnames), len(given), len(prefixes)
    offset = rng.randrange(10**8)
    tag = f"{seed % 10**6:06d}"
    counts = (1, 1, 1, 2, 2, 3, 1, 2)
    homes = [tuple(home == p for p in PLATFORMS) for home in PLATFORMS]
    people: list[Person] = []
    append = people.append
    for i in range(size):
        if draw() < p_all:
            dy = wc = ks = xhs = ali = True
        else:
            dy, wc, ks, xhs, ali = draw() < p_dy, draw() < p_wc, draw() < p_ks, draw() < p_xhs, draw() < p_ali
            if not (dy or wc or ks or xhs or ali):
                ali, dy, ks, wc, xhs = homes[bits(16) % 5]
        r = bits(64)  # the choices of one person, from one draw
        name = surnames[r % n_sur] + given[(r >> 8) % n_given]
        if r >> 16 & 3:
            name += given[(r >> 18) % n_given]
        append(Person(
            i, name, f"+86{prefixes[(r >> 26) % n_pre]}{(i * _SPREAD + offset) % 100_000_000:08d}",
            f"oPOP{tag}{i:010d}wx",
            f"dy-union-{tag}-{i:010d}" if dy and draw() < p_union else None,
            dy, dy and draw() < p_member, wc, wc and draw() < p_wm,
            counts[r >> 34 & 7] if ks else 0, ks and draw() < p_kp,
            counts[r >> 37 & 7] if xhs else 0, xhs and draw() < p_xp,
            ali,
        ))
    return Population(seed, people)
