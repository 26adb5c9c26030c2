"""Group commits: callbacks arriving together share one transaction; none is answered before it commits."""

from __future__ import annotations

import asyncio
import threading

import httpx
import sqlalchemy as sa

from hub.webhooks.receiver import create_app
from hub.webhooks.stored import store_events
from schemas.tables import FanRow, WebhookEventRow
from tests.hub.webhook_helpers import ACK, Tracker, make_host, make_settings, signed

URL = "/webhooks/hooktest/shop"
events_table = WebhookEventRow.__table__
fans_table = FanRow.__table__


def callback(i: int) -> dict[str, object]:
    return {"msg_id": f"m-{i}", "uid": f"u-{i}", "nickname": f"fan {i}"}


def hold_write_lock(engine: sa.Engine, taken: threading.Event, release: threading.Event) -> None:
    """Keep ``webhook_events`` locked against writers until ``release`` is set."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
            conn.exec_driver_sql("LOCK TABLE webhook_events IN EXCLUSIVE MODE")
        taken.set()
        release.wait(60)
        conn.rollback()


async def test_concurrent_callbacks_share_commits_and_none_is_answered_before_its_commit(engine, database_url):
    host = make_host(Tracker())
    app = create_app(host, make_settings(host, database_url), engine)
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(engine, taken, release))
    holder.start()
    assert taken.wait(30)
    bodies = [signed(callback(i)) for i in range(40)]
    bodies += bodies[:10]  # re-deliveries, in the same burst
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
            sends = [asyncio.create_task(client.post(URL, content=body, headers=headers)) for body, headers in bodies]
            await asyncio.sleep(1.0)
            # the database cannot commit: not one callback may have been acknowledged yet
            assert not any(send.done() for send in sends)
            release.set()
            answers = await asyncio.gather(*sends)
    finally:
        release.set()
        holder.join()
        writer = app.state.receiver.writers()[0]
        await app.state.receiver.aclose()
    assert [(a.status_code, a.content) for a in answers] == [(200, ACK)] * 50
    with engine.connect() as conn:
        keys = conn.execute(sa.select(events_table.c.dedupe_key, events_table.c.status)).all()
        fans = conn.execute(sa.select(fans_table.c.platform_uid)).scalars().all()
    assert sorted(k for k, _ in keys) == sorted(f"m-{i}" for i in range(40))
    assert {s for _, s in keys} == {"processed"}
    assert sorted(fans) == sorted(f"u-{i}" for i in range(40))
    # the first transaction waited for the lock; every other callback queued behind it went in a few more
    assert writer.transactions <= 4


def test_a_batch_stores_each_key_once_and_marks_later_copies_as_re_deliveries(engine):
    items = [("hooktest", "shop", "a", {"records": [{"type": "Fan", "data": {}}]}),
             ("hooktest", "shop", "b", {"records": []}),
             ("hooktest", "shop", "a", {"records": []}),
             ("hooktest", "other", "a", {"records": []})]
    first = store_events(engine, items)
    assert [(o.created, o.id is not None) for o in first] == [(True, True), (True, True), (False, False), (True, True)]
    again = store_events(engine, [items[1], ("hooktest", "shop", "c", {"records": []})])
    assert [o.created for o in again] == [False, True]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(events_table.c.account_id, events_table.c.dedupe_key, events_table.c.status)
                            .order_by(events_table.c.id)).all()
    # nothing to apply (no records, no follow-up): stored processed at once
    assert [tuple(r) for r in rows] == [("shop", "a", "received"), ("shop", "b", "processed"),
                                        ("other", "a", "processed"), ("shop", "c", "processed")]


def test_one_unstorable_callback_in_a_batch_fails_alone(engine):
    items = [("hooktest", "shop", "good-1", {"records": []}),
             ("hooktest", "shop", "bad", {"records": [], "raw": {"x": object()}}),
             ("hooktest", "shop", "good-2", {"records": []})]
    outcomes = store_events(engine, items)
    assert outcomes[0].created and outcomes[2].created
    assert isinstance(outcomes[1], Exception)
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(events_table.c.dedupe_key)).scalars()) == ["good-1", "good-2"]
