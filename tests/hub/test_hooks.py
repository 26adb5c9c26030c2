"""One test per hook: each shows the hub calling the hook and honouring its contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from typer.testing import CliRunner

import hub
from hub.cli import build_app
from hub.cli.context import Context
from hub.events import FanUpserted
from hub.plugins import load_plugins
from schemas import Fan, FanTier, Order

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def fan(**kw):
    return Fan(**{"platform": "douyin", "account_id": "ent", "platform_uid": "u1", **kw})


def paid(amount_fen):
    return Order(platform="kuaishou", account_id="shop", order_id="o1", buyer_uid="b1",
                 amount_fen=amount_fen, status="paid", paid_at=NOW)


def test_hook_register_platforms():
    class Toy(hub.Adapter):
        platform = "toy"
        capabilities = frozenset({hub.Capability.FANS})

        async def fetch_fans(self, account, cursor):
            return hub.Page(items=[])

    class Plugin:
        @hub.hookimpl
        def register_platforms(self, register):
            register(Toy)

    host = load_plugins(extra=[(Plugin(), "undo-toy")])
    info = host.platforms["toy"]
    assert info.adapter is Toy and info.plugin == "undo-toy"
    assert host.adapter_class("toy") is Toy
    assert {"douyin", "wecom", "alipay", "kuaishou", "xiaohongshu"} <= set(host.platforms)


def test_hook_register_commands():
    class Plugin:
        @hub.hookimpl
        def register_commands(self, cli):
            @cli.command("hello")
            def hello(name: str):
                typer.echo(f"hello {name}")

    context = Context()
    context._host = load_plugins(extra=[(Plugin(), "undo-hello")])
    result = CliRunner().invoke(build_app(context), ["hello", "weibo"])
    assert result.exit_code == 0 and result.output == "hello weibo\n"


def test_hook_track_event():
    seen = []

    class Plugin:
        @hub.hookimpl
        def track_event(self, event):
            seen.append(event)

    host = load_plugins(extra=[(Plugin(), "undo-track")])
    event = FanUpserted(fan=fan(), created=True)
    host.emit(event)
    assert seen == [event] and seen[0].name == "fan_upserted"


def test_hook_track_event_errors_reach_the_caller():
    class Plugin:
        @hub.hookimpl
        def track_event(self, event):
            raise RuntimeError("observer broke")

    host = load_plugins(extra=[(Plugin(), "undo-broken")])
    with pytest.raises(RuntimeError, match="observer broke"):
        host.emit(FanUpserted(fan=fan(), created=False))


def test_hook_identity_keys():
    class Plugin:
        @hub.hookimpl
        def identity_keys(self, fan):
            return [("toy_uid", fan.platform_uid)]

    host = load_plugins(extra=[(Plugin(), "undo-keys")])
    results = host.hook.identity_keys(fan=fan(platform_uid="abc"))
    assert ["toy_uid", "abc"] in [list(pair) for pairs in results if pairs for pair in pairs]


def test_hook_decide_tier():
    host = load_plugins()
    decide = host.hook.decide_tier
    assert decide(fan=fan(follow_state="unfollowed"), stats={}) is FanTier.PROSPECT
    assert decide(fan=fan(follow_state="following"), stats={"interactions": 0}) is FanTier.PASSERBY
    assert decide(fan=fan(follow_state="following"), stats={"interactions": 3}) is FanTier.FOND
    assert decide(fan=fan(follow_state="following"), stats={"interactions": 20}) is FanTier.DEVOTED
    assert decide(fan=fan(follow_state="following"), stats={"interactions": 0, "lifetime_points": 5}) is FanTier.DEVOTED

    class Plugin:
        @hub.hookimpl
        def decide_tier(self, fan):
            return FanTier.DEVOTED if fan.platform_uid == "vip" else None

    host = load_plugins(extra=[(Plugin(), "undo-tier")])
    assert host.hook.decide_tier(fan=fan(platform_uid="vip"), stats={}) is FanTier.DEVOTED
    assert host.hook.decide_tier(fan=fan(platform_uid="x"), stats={}) is FanTier.PROSPECT


def test_hook_earn_points():
    host = load_plugins()
    assert host.hook.earn_points(order=paid(1999)) == 19
    assert host.hook.earn_points(order=paid(99)) == 0

    class Plugin:
        @hub.hookimpl
        def earn_points(self, order):
            return order.amount_fen // 50

    host = load_plugins(extra=[(Plugin(), "undo-double")])
    assert host.hook.earn_points(order=paid(1999)) == 39
