"""The shared population: deterministic, realistic overlaps, valid unique phones, cheap."""

from __future__ import annotations

import dataclasses
import time

import pytest

import hub
from hub.platform.population import PLATFORMS
from hub.platform.sandbox import SandboxSpec, build_sandbox, takes_people
from schemas import normalise_phone


def test_the_same_seed_and_size_give_the_same_people_and_another_seed_others():
    assert list(hub.population(7, 500)) == list(hub.population(7, 500))
    assert list(hub.population(7, 500)) != list(hub.population(8, 500))
    assert list(hub.population(7, 1000)[:500]) == list(hub.population(7, 500))  # larger begins with smaller
    people = hub.population(7, 500)
    assert [p.index for p in people] == list(range(500)) and len(people) == 500
    assert repr(people) == "Population(seed=7, size=500)"
    assert len(hub.population(0, 0)) == 0


def test_people_are_frozen():
    person = hub.population(1, 1)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        person.phone = "+8613800138000"  # type: ignore[misc]


def test_phones_are_valid_normalised_and_unique_and_ids_unique():
    people = hub.population(3, 20_000)
    assert all(normalise_phone(p.phone) == p.phone and p.mobile == p.phone[3:] for p in people)
    assert len({p.phone for p in people}) == len(people)
    assert len({p.wechat_unionid for p in people}) == len(people)
    unions = [p.douyin_union_id for p in people if p.douyin_union_id]
    assert len(set(unions)) == len(unions)
    assert all(p.name and not p.name.isascii() for p in people)


def test_overlaps_are_realistic_and_readable():
    people = hub.population(0, 20_000)
    overlap = people.overlap()
    assert set(overlap) == {1, 2, 3, 4, 5}  # everyone is somewhere; some are everywhere
    several = sum(n for k, n in overlap.items() if k >= 2) / len(people)
    assert 0.5 < several < 0.75
    assert overlap[5] > 0.02 * len(people)
    for platform in PLATFORMS:
        share = len(people.on(platform)) / len(people)
        assert 0.25 < share < 0.6, platform
    with pytest.raises(ValueError, match="unknown platform"):
        people.on("weibo")


def test_traits_agree_with_platforms():
    for p in hub.population(5, 5_000):
        assert p.on("douyin") == p.douyin_follower and (p.douyin_union_id is None or p.douyin_follower)
        assert p.douyin_follower or not p.douyin_member
        assert p.on("wecom") == p.wecom_customer and (p.wecom_customer or not p.wecom_mobile)
        assert p.on("kuaishou") == (p.kuaishou_orders > 0) and 0 <= p.kuaishou_orders <= 3
        assert p.on("xiaohongshu") == (p.xiaohongshu_orders > 0) and 0 <= p.xiaohongshu_orders <= 3
        assert p.on("alipay") == p.alipay_card
        assert p.phone_platforms <= p.platforms and ("douyin" in p.phone_platforms) == p.douyin_member
        assert p.alipay_card == ("alipay" in p.phone_platforms)


def test_a_bad_size_is_one_clear_error():
    with pytest.raises(ValueError, match="0 to 100,000,000 people"):
        hub.population(0, -1)


def test_100k_people_are_cheap():
    start = time.perf_counter()
    people = hub.population(0, 100_000)
    elapsed = time.perf_counter() - start
    print(f"\npopulation(0, 100_000): {elapsed * 1000:.0f} ms; on k platforms: {people.overlap()}")
    assert len(people) == 100_000


# -- the factory contract ---------------------------------------------------------------------

def _old(seed, fans, base_url):
    return SandboxSpec(app=None, account={"platform": "x", "id": "a", "base_url": base_url, "fans": fans})


def _new(seed, fans, base_url, *, people=None):
    n = fans if people is None else len(people.on("wecom"))
    return SandboxSpec(app=None, account={"platform": "x", "id": "a", "base_url": base_url, "fans": n})


def _kwargs(seed, fans, base_url, **options):
    return _new(seed, fans, base_url, people=options.get("people"))


class _Host:
    def __init__(self, factory):
        self.factory = factory

    def adapter_class(self, platform):
        return type("X", (hub.Adapter,), {"platform": "x", "sandbox": f"{__name__}:{self.factory}"})


@pytest.mark.parametrize("factory, takes", [("_old", False), ("_new", True), ("_kwargs", True)])
def test_build_sandbox_passes_people_only_to_a_factory_that_takes_them(factory, takes):
    assert takes_people(globals()[factory]) is takes
    people = hub.population(2, 100)
    spec = build_sandbox(_Host(factory), "x", seed=2, fans=100, base_url="http://h", people=people)
    assert spec.account["fans"] == (len(people.on("wecom")) if takes else 100)
    alone = build_sandbox(_Host(factory), "x", seed=2, fans=100, base_url="http://h")
    assert alone.account["fans"] == 100
