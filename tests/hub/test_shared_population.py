"""One shared population across all five sandboxes: synced into one database and stitched, the
same person is one member wherever their platforms show a shared key (the phone), as the
population says.

Each built-in sandbox is built with the same ``hub.population(seed, size)`` through
``build_sandbox(..., people=...)``; the hub syncs Douyin, WeCom, Kuaishou and Xiaohongshu, the
Alipay card holders open the card through the activation form (their phone in it), the Douyin
followers who joined the 来客 membership send ``life_member_join`` (their phone in it), and
``siyu apply`` stitches.  A person's fans on the platforms in ``phone_platforms`` become one
member; a fan on a platform that shows no shared key (a Douyin follower who never joined the
membership: the fans list has no phone; a WeCom customer whose mobile the staff did not note)
stays a member of its own.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from contextlib import ExitStack

import httpx
import sqlalchemy as sa

import hub
from hub.cli import main
from hub.config import load_settings
from hub.platform.sandbox import account_toml, build_sandbox, free_port, serve_asgi
from hub.plugins import load_plugins
from hub.webhooks.receiver import create_app
from plugins.alipay.sandbox_data import make_user
from plugins.kuaishou.sandbox_data import buyer_id
from plugins.xiaohongshu.sandbox_data import user_id
from schemas.tables import FanRow, MemberRow

HOST = load_plugins()
SEED, SIZE = 11, 200
PLATFORMS = ("alipay", "douyin", "kuaishou", "wecom", "xiaohongshu")


def uid_of(platform: str, person: hub.Person) -> str:
    """The person's platform uid in the sandbox of ``platform`` (as its sandbox_data names them)."""
    i = person.index
    return {"alipay": lambda: make_user(SEED, i).open_id, "douyin": lambda: f"fan-{SEED}-{i:06d}",
            "kuaishou": lambda: buyer_id(SEED, i + 1), "wecom": lambda: f"wmSBX{SEED % 1000:03d}{i:08d}",
            "xiaohongshu": lambda: user_id(SEED, i)}[platform]()


def expected_members(people: hub.Population) -> Counter[int]:
    """How many members should have fans on ``k`` platforms: one per person whose phone some
    platform shows (on those platforms), one per fan elsewhere."""
    counts: Counter[int] = Counter()
    for person in people:
        keyed = person.phone_platforms
        if keyed:
            counts[len(keyed)] += 1
        counts[1] += len(person.platforms - keyed)
    return counts


def test_five_sandboxes_share_one_population_and_people_become_one_member(tmp_path, database_url, engine):
    people = hub.population(SEED, SIZE)
    with ExitStack() as servers:
        accounts, urls = {}, {}
        for platform in PLATFORMS:
            port = free_port()
            spec = build_sandbox(HOST, platform, seed=SEED, fans=SIZE, base_url=f"http://127.0.0.1:{port}",
                                 people=people)
            urls[platform] = servers.enter_context(serve_asgi(spec.app, port=port))
            accounts[platform] = spec.account
            if platform == "alipay":
                alipay = spec
        config = tmp_path / "siyu.toml"
        config.write_text(f'[database]\nurl = "{database_url}"\n\n[security]\n'
                          'phone_key = "test-phone-key-0123456789abcdef"\n\n[retry]\nattempts = 8\n'
                          "initial_wait = 0.01\nmax_wait = 0.05\njitter = 0.01\n\n"
                          + "\n".join(account_toml(a) for a in accounts.values()))
        for platform in ("douyin", "kuaishou", "wecom", "xiaohongshu"):  # one at a time: SQLite has one writer
            assert main(["--config", str(config), "sync", "--platform", platform, "--json"]) == 0

        # the platforms' callbacks: the card holders open the Alipay card through the activation form
        # (their phone in it), the Douyin followers who joined the 来客 membership send their phone
        settings = load_settings(HOST, config)
        assert len(alipay.app.state.sandbox.users) == len(people.on("alipay"))
        with serve_asgi(create_app(HOST, settings, engine)) as hub_url:
            opened = httpx.post(f"{urls['alipay']}/_admin/activate_all", timeout=120,
                                json={"url": f"{hub_url}/webhooks/alipay/{alipay.account['id']}"}).json()
            joined = httpx.post(f"{urls['douyin']}/_admin/joins", timeout=120,
                                json={"url": f"{hub_url}/webhooks/douyin/{accounts['douyin']['id']}"}).json()
        assert opened == {"answered": len(people.on("alipay")), "statuses": {"200": len(people.on("alipay"))}}
        assert joined["delivered"] == sum(p.douyin_member for p in people) and joined["left"] == 0
        assert main(["--config", str(config), "apply", "--json"]) == 0

    fans, members = FanRow.__table__, MemberRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(fans.c.platform, fans.c.platform_uid, fans.c.member_id)).all()
        merged = conn.execute(sa.select(sa.func.count()).select_from(members)
                              .where(members.c.merged_into.is_not(None))).scalar_one()
    member_of = {(r.platform, r.platform_uid): r.member_id for r in rows}
    assert None not in member_of.values()

    # every person is on the platforms the population says, and nobody else is
    wanted = {(platform, uid_of(platform, person)): person for person in people for platform in person.platforms}
    assert set(member_of) == set(wanted)

    # a person's fans on the platforms that show their phone are one member; every other fan is alone
    fans_of_member: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for key, member_id in member_of.items():
        fans_of_member[member_id].append(key)
    for person in people:
        keyed = {member_of[(p, uid_of(p, person))] for p in person.phone_platforms}
        assert len(keyed) <= 1, f"person {person.index} is {len(keyed)} members"
        for platform in person.platforms:
            member_id = member_of[(platform, uid_of(platform, person))]
            together = {p for p, _ in fans_of_member[member_id]}
            assert together == (set(person.phone_platforms) if platform in person.phone_platforms else {platform})

    found = Counter(len({p for p, _ in keys}) for keys in fans_of_member.values())
    assert found == expected_members(people)
    several = sum(n for k, n in found.items() if k >= 2)
    assert several > 0.3 * SIZE and found[4] > 0  # people recognised on several platforms, some on four
    print(json.dumps({"people": SIZE, "people_on_k_platforms": people.overlap(),
                      "members_with_fans_on_k_platforms": dict(sorted(found.items())),
                      "fans": len(member_of), "members": len(fans_of_member), "merges": merged}))


def test_each_sandbox_holds_the_people_of_its_platform_with_their_identities():
    people = hub.population(SEED, 300)
    spec = {p: build_sandbox(HOST, p, seed=SEED, fans=300, base_url="http://127.0.0.1:9", people=people)
            for p in PLATFORMS}
    phone = {p.index: p.mobile for p in people}

    corp = spec["wecom"].app.state.sandbox.corp
    customers = people.on("wecom")
    assert sorted(corp.contacts) == sorted(uid_of("wecom", p) for p in customers)
    for person in customers:
        contact = corp.contacts[uid_of("wecom", person)]
        assert (contact["unionid"], contact["name"], contact["type"]) == (person.wechat_unionid, person.name, 1)
        mobiles = {m for (uid, _), r in corp.relations.items() if uid == contact["external_userid"]
                   for m in r["remark_mobiles"]}
        assert mobiles == ({person.mobile} if person.wecom_mobile else set())

    douyin = spec["douyin"].app.state.douyin
    assert [f["open_id"] for f in douyin.followers] == [uid_of("douyin", p) for p in people.on("douyin")]
    assert [f["union_id"] or None for f in douyin.followers] == [p.douyin_union_id for p in people.on("douyin")]
    assert {j["open_id"]: j["mobile"] for j in douyin.joins} == {
        uid_of("douyin", p): p.mobile for p in people if p.douyin_member}

    shop = spec["kuaishou"].app.state.kuaishou.shop
    bought = Counter(o["orderBaseInfo"]["buyerOpenId"] for o in shop.orders.values())
    assert bought == {uid_of("kuaishou", p): p.kuaishou_orders for p in people.on("kuaishou")}
    assert set(shop.phones.values()) == {p.mobile for p in people.on("kuaishou") if p.kuaishou_phone}
    assert spec["kuaishou"].account["decrypt_phones"] is True

    shop = spec["xiaohongshu"].app.state.xiaohongshu.shop
    bought = Counter(o["userId"] for o in shop.orders.values())
    assert bought == {uid_of("xiaohongshu", p): p.xiaohongshu_orders for p in people.on("xiaohongshu")}
    assert set(shop.phones.values()) == {p.mobile for p in people.on("xiaohongshu") if p.xiaohongshu_phone}

    users = spec["alipay"].app.state.sandbox.users
    assert [(u.open_id, u.phone) for u in users] == [(uid_of("alipay", p), phone[p.index]) for p in people.on("alipay")]
