"""``siyu demo``'s story: every built-in platform's sandbox, run through the hub's real paths.

One shared population (:func:`hub.platform.population.population`) feeds all five sandboxes,
so the same people show on several platforms.  :func:`run_demo` then, in order:

1. **sync** every account (:func:`hub.sync.run.run_sync`), which stitches and earns from orders;
2. **callbacks**, signed by the sandboxes and sent through the hub's receiver: the Alipay card
   holders fill the activation form (their phone in it), the Douyin 来客 members' joins (their
   phone), a new Douyin follower and a private message from a stranger; then ``apply``;
3. **WeCom cards**: the 公众号 card code of each WeCom customer whose mobile is known;
4. **refund**: a Kuaishou order refunded in its sandbox, synced again: its points reversed;
5. **gift, expiry, redemption** for one member recognised on several platforms;
6. **push-back**: every card queued, the outbox drained, each card read back from its sandbox;
7. ``ledger verify`` and the report's figures.

Only platforms of the ``siyu-hub`` distribution take part (test-only plugins never do).  Every
write is idempotent by key, so a second run into the same database adds no fan, member, order,
ledger entry or card; only the sandboxes (which start empty) get their cards pushed again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from hub.config import Settings, load_settings
from hub.demo import cards as demo_cards
from hub.ledger import expire, post, redeem, verify
from hub.ledger.orders import PAID_STATUSES
from hub.outbox.drain import Drainer
from hub.people.phones import generate_phone_key
from hub.platform.population import population
from hub.platform.sandbox import account_toml, build_sandbox, free_port, serve_asgi
from hub.plugins import PluginHost
from hub.people.members import refresh_tiers
from hub.report import compute_figures, render_html
from hub.storage import database as storage
from hub.storage.tokens import clear_tokens
from hub.sync.apply import apply_pending
from hub.sync.run import run_sync
from hub.webhooks.process import process_pending_blocking
from hub.webhooks.receiver import create_app
from schemas.tables import (FanRow, LedgerEntryRow, MemberCardRow, MemberRow, MessageRow, OrderRow,
                            PointsEventRow, utcnow)

__all__ = ["BUILT_IN", "STEPS", "DemoOptions", "Progress", "built_in_platforms", "run_demo"]

BUILT_IN = "siyu-hub"
"""The distribution whose platforms the demo runs: the hub's own plugins."""
Progress = Callable[[str, int, int | None], None]
"""``progress(step, done, total)``: a step started (``done`` 0) or advanced."""
STEPS = ("sandboxes", "sync", "callbacks", "cards", "refund", "ledger", "push-back", "report")
GIFT_KEY, REDEEM_KEY = "demo:gift", "demo:redemption"
GIFT_POINTS, REDEEM_POINTS = 300, 100
GIFT_AGO, GIFT_LIFE = timedelta(days=60), timedelta(days=30)
"""The gift was given 60 days before the first run and expired 30 days later."""
COUNTED = {"fans": FanRow, "members": MemberRow, "orders": OrderRow, "points_events": PointsEventRow,
           "messages": MessageRow, "ledger_entries": LedgerEntryRow, "member_cards": MemberCardRow}

HEADER = """\
# Written by `siyu demo`: one account per built-in platform, each pointing at its sandbox on
# loopback.  Regenerated on every run (the sandboxes' ports change); the database is kept.
[database]
url = {url}

[security]
phone_key = "file:siyu.key"
"""


@dataclass(frozen=True)
class DemoOptions:
    """What to run: ``people`` in the shared population, written to ``directory``."""

    directory: Path
    people: int = 2000
    seed: int = 0
    database_url: str | None = None


def built_in_platforms(host: PluginHost) -> list[str]:
    """The platforms the hub's own distribution registers, sorted."""
    return sorted(p for p, info in host.platforms.items() if info.distribution == BUILT_IN)


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(row.__table__)).scalar_one()
                for name, row in COUNTED.items()}


def _write_key(directory: Path) -> None:
    key = directory / "siyu.key"
    if not key.exists():
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_phone_key() + "\n")


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(url, json=body, timeout=600)
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def _callbacks(host: PluginHost, settings: Settings, engine: sa.Engine, urls: dict[str, str],
               accounts: dict[str, str], seed: int) -> dict[str, Any]:
    """The platforms' signed callbacks, through the hub's receiver, then applied."""
    done: dict[str, Any] = {}
    with serve_asgi(create_app(host, settings, engine)) as hub_url:
        def hook(platform: str) -> str:
            return f"{hub_url}/webhooks/{platform}/{accounts[platform]}"

        bursts = {}  # the card activations of both platforms arrive at once
        with ThreadPoolExecutor(2) as pool:
            if "alipay" in urls:
                bursts["alipay"] = pool.submit(_post, f"{urls['alipay']}/_admin/activate_all", {"url": hook("alipay")})
            if "douyin" in urls:
                bursts["douyin"] = pool.submit(_post, f"{urls['douyin']}/_admin/joins", {"url": hook("douyin")})
        if "alipay" in bursts:
            done["alipay_cards_activated"] = bursts["alipay"].result()["answered"]
        if "douyin" in bursts:
            done["douyin_members_joined"] = bursts["douyin"].result()["delivered"]
            stranger = f"demo-stranger-{seed}"
            follow = _post(f"{urls['douyin']}/_admin/deliver", {
                "url": hook("douyin"), "event": "new_follow_action", "from_user_id": f"demo-follower-{seed}",
                "content": {"action_time": 1_767_225_600}})
            message = _post(f"{urls['douyin']}/_admin/deliver", {
                "url": hook("douyin"), "event": "im_receive_msg", "from_user_id": stranger,
                "content": {"server_message_id": f"demo-msg-{seed}-1", "conversation_short_id": f"demo-conv-{seed}",
                            "message_type": "text", "text": "你好，会员卡怎么领？", "create_time": 1_767_225_600_000,
                            "user_infos": [{"open_id": stranger, "nick_name": "陌生人"}]}})
            done["douyin_follow"] = follow["status"]
            done["douyin_stranger_message"] = message["status"]
    pending = process_pending_blocking(host, settings, engine)
    applied = apply_pending(engine, host, settings)
    done["pending_processed"] = sum(pending.values())
    done["members_merged"] = applied.merges
    done["cards_opened"] = applied.cards_updated
    return done


def _refund(host: PluginHost, settings: Settings, engine: sa.Engine, urls: dict[str, str]) -> dict[str, Any]:
    """Refund the first paid Kuaishou order in its sandbox and sync Kuaishou again."""
    if "kuaishou" not in urls:
        return {}
    orders = OrderRow.__table__
    with engine.connect() as conn:
        order = conn.execute(sa.select(orders.c.order_id, orders.c.account_id, orders.c.amount_fen)
                             .where(orders.c.platform == "kuaishou", orders.c.amount_fen > 0,
                                    orders.c.status.in_([s.value for s in PAID_STATUSES]))
                             .order_by(orders.c.id).limit(1)).first()
    if order is None:
        return {}
    _post(f"{urls['kuaishou']}/_admin/refund", {"oid": int(order.order_id)})
    run = run_sync(host, settings, engine, platform="kuaishou")
    entries = LedgerEntryRow.__table__
    with engine.connect() as conn:
        reversed_points = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(entries.c.points), 0)).where(
            entries.c.idempotency_key.startswith(f"order:kuaishou:{order.account_id}:{order.order_id}:refund:",
                                                 autoescape=True))).scalar_one()
    return {"order_id": order.order_id, "amount_fen": order.amount_fen, "points_reversed": -int(reversed_points),
            "ok": run.ok}


def _star(engine: sa.Engine) -> int | None:
    """The member of the story: the one redeemed before, else the richest holding the most cards."""
    entries, cards_t, members_t = LedgerEntryRow.__table__, MemberCardRow.__table__, MemberRow.__table__
    with engine.connect() as conn:
        before = conn.execute(sa.select(entries.c.member_id).where(entries.c.idempotency_key == REDEEM_KEY)).scalar()
        if before is not None:
            return int(before)
        held = sa.func.count(sa.distinct(cards_t.c.platform))
        row = conn.execute(sa.select(members_t.c.member_id)
                           .join(cards_t, cards_t.c.member_id == members_t.c.member_id)
                           .where(cards_t.c.status == "active", members_t.c.merged_into.is_(None))
                           .group_by(members_t.c.member_id, members_t.c.balance)
                           .order_by(held.desc(), members_t.c.balance.desc(), members_t.c.member_id)
                           .limit(1)).first()
    return None if row is None else int(row.member_id)


def _ledger(host: PluginHost, engine: sa.Engine, policy: Any) -> dict[str, Any]:
    """A gift that expired, the expiry run, a redemption: all for one member."""
    member = _star(engine)
    if member is None:
        return {}
    with engine.connect() as conn:  # given by an earlier run: its time stays that run's
        gift_new = conn.execute(sa.select(LedgerEntryRow.__table__.c.entry_id).where(
            LedgerEntryRow.__table__.c.idempotency_key == GIFT_KEY)).first() is None
    if gift_new:
        given = utcnow() - GIFT_AGO
        post(engine, member_id=member, points=GIFT_POINTS, reason=f"welcome gift, valid {GIFT_LIFE.days} days",
             key=GIFT_KEY, expires_at=given + GIFT_LIFE, now=given, policy=policy, host=host)
    expired = expire(engine, policy=policy, host=host)
    redeemed = redeem(engine, member_id=member, points=REDEEM_POINTS, key=REDEEM_KEY,
                      reason="redeemed for a coupon", policy=policy, host=host)
    return {"member_id": member, "gift": GIFT_POINTS, "gift_new": gift_new,
            "expired_entries": len(expired), "expired_points": -sum(p.entry.points for p in expired),
            "redeemed": REDEEM_POINTS, "redemption_new": redeemed.created, "balance": redeemed.balance}


def _drain(engine: sa.Engine, host: PluginHost, settings: Settings) -> dict[str, int]:
    async def all_accounts() -> list[Any]:
        # one drainer per account, all accounts at once (two drainers of one account would each
        # fetch a token, and a platform that keeps only the newest ones expires the other's)
        return await asyncio.gather(*(Drainer(engine, host, settings, accounts=[a]).drain()
                                      for a in settings.accounts))

    summaries = asyncio.run(all_accounts())
    totals = {k: sum(getattr(s, k) for s in summaries) for k in ("sent", "dead", "superseded", "retries")}
    totals["errors"] = sorted({i.error for s in summaries for i in s.items if i.error})[:5]
    return totals


def run_demo(host: PluginHost, options: DemoOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the story (see the module docstring) and return its figures.

    :param host: the installed plugins; only the built-in platforms take part.
    :param options: size, seed, directory and database.
    :param progress: told when each step starts and how a sync advances.
    """
    started = time.monotonic()
    seconds: dict[str, float] = {}
    current: list[Any] = [None, started]

    def tell(step: str, done: int, total: int | None) -> None:
        if step != current[0]:
            now = time.monotonic()
            if current[0] is not None:
                seconds[current[0]] = round(now - current[1], 1)
            current[:] = [step, now]
        if progress is not None:
            progress(step, done, total)

    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True)
    _write_key(directory)
    platforms = built_in_platforms(host)
    people = population(options.seed, options.people)
    steps: dict[str, Any] = {}
    tell("sandboxes", 0, len(platforms))
    with ExitStack() as servers:
        urls, accounts, tables = {}, {}, []
        for platform in platforms:
            port = free_port()
            spec = build_sandbox(host, platform, seed=options.seed, fans=options.people,
                                 base_url=f"http://127.0.0.1:{port}", people=people)
            urls[platform] = servers.enter_context(serve_asgi(spec.app, port=port))
            accounts[platform] = str(spec.account["id"])
            tables.append(account_toml(spec.account))
            tell("sandboxes", len(urls), len(platforms))
        url = options.database_url or "sqlite:///siyu.db"
        config = directory / "siyu.toml"
        config.write_text(HEADER.format(url=account_toml({"u": url}).split(" = ", 1)[1].strip()) + "\n"
                          + "\n".join(tables), encoding="utf-8")
        settings = load_settings(host, config)
        engine = storage.create_engine(settings.database_url)
        try:
            storage.upgrade(engine)
            clear_tokens(engine)  # the sandboxes are new: tokens of the last run mean nothing to them
            before = _counts(engine)
            tell("sync", 0, None)
            pages = [0]

            def paged(*args: Any) -> None:
                pages[0] += 1
                tell("sync", pages[0], None)

            run = run_sync(host, settings, engine, progress=paged)
            applied = run.applied
            steps["sync"] = {"ok": run.ok, "pages": sum(s.pages for s in run.streams),
                             "inserted": sum(s.inserted for s in run.streams),
                             "updated": sum(s.updated for s in run.streams),
                             "unchanged": sum(s.unchanged for s in run.streams),
                             "errors": [f"{s.platform}:{s.account_id} {s.stream}: {s.error}" for s in run.streams if s.error],
                             "fans_stitched": applied.fans_stitched if applied else 0,
                             "orders_applied": applied.orders_applied if applied else 0}
            tell("callbacks", 0, None)
            steps["callbacks"] = _callbacks(host, settings, engine, urls, accounts, options.seed)
            tell("cards", 0, None)
            steps["wecom_cards"] = demo_cards.give_wecom_cards(engine, settings) if "wecom" in urls else 0
            apply_pending(engine, host, settings)
            tell("refund", 0, None)
            steps["refund"] = _refund(host, settings, engine, urls)
            tell("ledger", 0, None)
            policy = _policy(settings)
            steps["ledger"] = _ledger(host, engine, policy)
            tell("push-back", 0, None)
            queued = demo_cards.queue_every_card(engine)
            steps["push_back"] = {"queued": queued, **_drain(engine, host, settings)}
            card_check = demo_cards.read_back(engine, urls)
            tell("report", 0, None)
            steps["tiers"] = {"changed": refresh_tiers(engine, host=host)}  # the funnel: 潜在 → 路人 → 好感 → 真爱
            violations = verify(engine, policy=policy)
            figures = compute_figures(engine, accounts=[(a.platform, a.id) for a in settings.accounts])
            report_html = directory / "report.html"
            report_html.write_text(render_html(figures), encoding="utf-8")
            after = _counts(engine)
            tell("done", 0, None)
        finally:
            engine.dispose()
    problems = [*steps["sync"]["errors"], *(f"ledger verify: {v}" for v in violations[:5])]
    problems += [f"{p}: {c['cards'] - c['in_step']} of {c['cards']} cards differ from the ledger"
                 for p, c in sorted(card_check.items()) if not c["all_in_step"]]
    if steps["push_back"]["dead"]:
        problems.append(f"push-back: {steps['push_back']['dead']} card updates dead (siyu outbox list --status dead)")
    if not card_check:
        problems.append("no platform with member cards took part")
    return {
        "ok": not problems, "problems": problems, "directory": str(directory), "config": str(config), "platforms": platforms,
        "people": options.people, "seed": options.seed, "steps": steps,
        "recognised": {d["platforms"]: d["members"] for d in figures["overlap"]["by_degree"]},
        "fans": figures["fans"]["total"], "members": figures["members"]["total"],
        "points": figures["points"]["totals"], "cards": card_check,
        "ledger_verify": {"ok": not violations, "violations": len(violations),
                          "first": [str(v) for v in violations[:5]]},
        "report": figures, "report_html": str(report_html),
        "added": {k: after[k] - before[k] for k in after}, "seconds": round(time.monotonic() - started, 1),
        "step_seconds": seconds,
    }


def _policy(settings: Settings) -> Any:
    from hub.ledger import LedgerPolicy

    return LedgerPolicy(level_thresholds=tuple(settings.ledger.level_thresholds))
