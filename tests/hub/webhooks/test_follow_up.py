"""The processing of stored callbacks: a follow-up runs before the records, and a failure keeps it pending."""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa

from hub.webhooks.process import process_event
from hub.webhooks.stored import apply_event, event_payload, store_event
from schemas import Account, Fan, FollowState
from schemas.tables import FanRow, WebhookEventRow
from tests.hub.webhook_helpers import Tracker, make_host, make_settings

events = WebhookEventRow.__table__
ACCOUNT = Account(platform="hooktest", account_id="shop")


class Completer:
    """An adapter whose complete_webhook fails ``failures`` times, then returns a fan."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[dict] = []

    async def complete_webhook(self, account, follow_up):
        self.calls.append(dict(follow_up))
        if len(self.calls) <= self.failures:
            raise ConnectionError("the platform is down")
        return [Fan(platform="hooktest", account_id="shop", platform_uid=follow_up["uid"],
                    follow_state=FollowState.FOLLOWING)]


def stored_with_follow_up(engine, settings, key="k-1"):
    payload = event_payload([], settings.phones, follow_up={"uid": "u-7"})
    return store_event(engine, "hooktest", "shop", key, payload).id


def row(engine, event_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(events).where(events.c.id == event_id)).mappings().one()


def fans(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(FanRow.__table__.c.platform_uid)).scalars().all()


async def test_a_failed_follow_up_keeps_the_callback_pending_then_completes(engine, database_url):
    host = make_host(Tracker())
    settings = make_settings(host, database_url)
    event_id = stored_with_follow_up(engine, settings)
    adapter = Completer(failures=1)

    async def handle_for(platform, account_id):
        return SimpleNamespace(adapter=adapter, account=ACCOUNT)

    assert await process_event(engine, host, settings, event_id, handle_for) == "pending"
    first = row(engine, event_id)
    assert first["status"] == "received" and "ConnectionError" in first["error"] and fans(engine) == []
    assert await process_event(engine, host, settings, event_id, handle_for) == "processed"
    assert row(engine, event_id)["status"] == "processed" and fans(engine) == ["u-7"]
    assert adapter.calls == [{"uid": "u-7"}, {"uid": "u-7"}]
    assert await process_event(engine, host, settings, event_id, handle_for) == "skipped"
    assert len(adapter.calls) == 2  # done once: no more calls out


def test_applying_without_the_follow_up_leaves_the_callback_pending(engine, database_url):
    host = make_host(Tracker())
    settings = make_settings(host, database_url)
    event_id = stored_with_follow_up(engine, settings)
    assert apply_event(engine, host, settings.phones, event_id) is None
    assert row(engine, event_id)["status"] == "received"


async def test_a_callback_for_an_account_no_longer_configured_stays_pending(engine, database_url):
    host = make_host(Tracker())
    settings = make_settings(host, database_url)
    event_id = stored_with_follow_up(engine, settings)

    async def nowhere(platform, account_id):
        return None

    assert await process_event(engine, host, settings, event_id, nowhere) == "pending"
    assert row(engine, event_id)["status"] == "received"


def test_a_payload_that_is_not_json_is_refused_before_the_insert(database_url):
    import pytest

    host = make_host(Tracker())
    settings = make_settings(host, database_url)
    for bad in ({"when": object()}, {"x": float("nan")}):
        with pytest.raises((TypeError, ValueError)):
            event_payload([], settings.phones, follow_up=bad)
