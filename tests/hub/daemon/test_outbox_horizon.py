"""The outbox's retry horizon in time: a transient failure is retried with a capped back-off until
the item is older than ``give_up_after``, then it is dead; permanent errors are dead at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hub.outbox.drain import Drainer
from schemas.tables import utcnow
from tests.hub.outbox_helpers import card_item, insert, make_settings, statuses


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now


def test_a_platform_down_then_up_delivers_the_item_by_itself(engine, database_url, card_host, card_sandbox):
    clock = Clock()
    drainer = Drainer(engine, card_host, make_settings(card_host, database_url, card_sandbox.base_url),
                      clock=clock, give_up_after=timedelta(hours=24), backoff=(30, 300))
    item = insert(engine, card_item(7, 70), inserted_at=clock.now, available_at=clock.now)[0]
    card_sandbox.faults[7] = "down"
    waits = []
    for _ in range(5):  # an outage of ~12 minutes of compressed time: five claims, each deferred
        summary = asyncio.run(drainer.drain())
        assert (summary.sent, summary.dead, summary.deferred) == (0, 0, 1)
        status, attempts, error = statuses(engine)[item]
        assert status == "pending" and "HTTP 503" in error
        assert asyncio.run(drainer.drain()).deferred == 0  # not due yet: nothing is sent
        due = _available_at(engine, item)
        waits.append(round((due - clock.now).total_seconds()))
        clock.now = due
    assert waits == [30, 60, 120, 240, 300]  # doubling, capped
    card_sandbox.faults.clear()  # the platform answers again
    summary = asyncio.run(drainer.drain())
    assert (summary.sent, summary.dead) == (1, 0)
    assert statuses(engine)[item][0] == "done"


def test_past_the_horizon_the_item_is_dead_and_permanent_errors_are_dead_at_once(
        engine, database_url, card_host, card_sandbox):
    clock = Clock()
    drainer = Drainer(engine, card_host, make_settings(card_host, database_url, card_sandbox.base_url),
                      clock=clock, give_up_after=timedelta(minutes=2), backoff=(30, 300))
    down, rejected = insert(engine, card_item(1, 10), card_item(2, 20), inserted_at=clock.now,
                            available_at=clock.now)
    card_sandbox.faults.update({1: "down", 2: "reject"})
    summary = asyncio.run(drainer.drain())
    assert (summary.deferred, summary.dead) == (1, 1)
    assert statuses(engine)[rejected][0] == "dead"
    # the back-off never schedules past the horizon
    assert _available_at(engine, down) <= clock.now + timedelta(minutes=2)
    clock.now += timedelta(minutes=3)
    summary = asyncio.run(drainer.drain())
    assert (summary.deferred, summary.dead) == (0, 1)
    assert statuses(engine)[down][0] == "dead"


def _available_at(engine, item):
    import sqlalchemy as sa

    from schemas.tables import OutboxRow

    t = OutboxRow.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(t.c.available_at).where(t.c.id == item)).scalar_one()
