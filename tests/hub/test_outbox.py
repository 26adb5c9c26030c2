"""The outbox drainer: order per target, supersede, retries then dead, retry, concurrency, crash resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.storage import database as storage
from hub.cli import build_app
from hub.cli.context import Context
from hub.outbox.drain import Drainer, enqueue
from hub.outbox.items import retry_dead
from schemas.tables import utcnow
from tests.hub.outbox_helpers import (
    CardSandbox,
    card_item,
    insert,
    make_host,
    make_settings,
    message_item,
    statuses,
    write_config,
)
from tests.hub.webhook_helpers import serving
from tests.hub.sandboxes import interruptible

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox():
    box = CardSandbox()
    with serving(box.app) as base_url:
        box.base_url = base_url
        yield box
        box.release.set()


@pytest.fixture
def host():
    return make_host()


@pytest.fixture
def drainer(engine, database_url, host, sandbox):
    return Drainer(engine, host, make_settings(host, database_url, sandbox.base_url))


def drain(drainer, **kw):
    return asyncio.run(drainer.drain(**kw))


def test_items_of_one_target_go_in_id_order(engine, drainer, sandbox):
    ids = insert(engine, message_item("a1", "a"), message_item("b1", "b"), message_item("a2", "a"),
                 message_item("a3", "a"), message_item("b2", "b"))
    summary = drain(drainer)
    assert summary.sent == 5 and summary.dead == 0
    sent = [m["msg_id"] for m in sandbox.messages]
    assert [m for m in sent if m.startswith("a")] == ["a1", "a2", "a3"]
    assert [m for m in sent if m.startswith("b")] == ["b1", "b2"]
    assert statuses(engine) == {i: ("done", 1, None) for i in ids}
    assert drain(drainer).sent == 0  # nothing is sent twice
    assert len(sandbox.messages) == 5


def test_a_newer_card_update_supersedes_older_unsent_ones(engine, drainer, sandbox):
    old1, old2, new, other = insert(engine, card_item(1, 10), card_item(1, 20), card_item(1, 30), card_item(2, 5))
    summary = drain(drainer)
    assert (summary.sent, summary.superseded) == (2, 2)
    assert sorted((p["member_id"], p["balance"]) for p in sandbox.pushes) == [(1, 30), (2, 5)]
    st = statuses(engine)
    assert [st[i][0] for i in (old1, old2, new, other)] == ["superseded", "superseded", "done", "done"]
    assert st[old1][1] == 0  # never claimed


def test_messages_are_never_superseded(engine, drainer, sandbox):
    insert(engine, message_item("m1", "a"), message_item("m2", "a"))
    assert drain(drainer).superseded == 0
    assert [m["msg_id"] for m in sandbox.messages] == ["m1", "m2"]


def test_enqueue_supersedes_pending_cards_in_the_same_transaction(engine):
    with engine.begin() as conn:
        first = enqueue(conn, platform="cardtest", account_id="shop", **card_item(1, 10))
        second = enqueue(conn, platform="cardtest", account_id="shop", **card_item(1, 20))
        enqueue(conn, platform="cardtest", account_id="shop", **message_item("m1", "a"))
        enqueue(conn, platform="cardtest", account_id="shop", **message_item("m2", "a"))
    st = statuses(engine)
    assert st[first][0] == "superseded" and st[second][0] == "pending"
    assert sum(1 for s in st.values() if s[0] == "pending") == 3


def test_dead_after_the_retry_policy_gives_up_then_retry(engine, drainer, sandbox):
    sandbox.faults[5] = "down"
    down, fine = insert(engine, card_item(5, 50), card_item(6, 60))
    summary = drain(drainer)
    assert (summary.sent, summary.dead, summary.retries) == (1, 1, 2)
    assert sandbox.count(5) == 3  # the policy's three attempts
    status, attempts, error = statuses(engine)[down]
    assert (status, attempts) == ("dead", 1) and "HTTP 503" in error and "TransientError" in error
    assert drain(drainer).sent == 0 and sandbox.count(5) == 3  # dead stays dead
    sandbox.faults.clear()
    assert retry_dead(engine) == [down]
    assert drain(drainer).sent == 1
    assert statuses(engine)[down] == ("done", 2, None)
    assert statuses(engine)[fine][0] == "done" and sandbox.count(6) == 1


def test_permanent_errors_and_refusals_are_dead_at_once(engine, drainer, sandbox):
    sandbox.faults.update({7: "reject", 8: "refuse"})
    rejected, refused = insert(engine, card_item(7, 1), card_item(8, 1))
    summary = drain(drainer)
    assert (summary.dead, summary.retries) == (2, 0)
    assert sandbox.count(7) == sandbox.count(8) == 1
    st = statuses(engine)
    assert st[rejected][0] == "dead" and "PermanentError" in st[rejected][2] and "4001" in st[rejected][2]
    assert st[refused][0] == "dead" and "card frozen" in st[refused][2]


def test_a_retried_old_card_update_does_not_overwrite_a_newer_one(engine, drainer, sandbox):
    sandbox.faults[3] = "reject"
    old = insert(engine, card_item(3, 10))[0]
    drain(drainer)
    sandbox.faults.clear()
    new = insert(engine, card_item(3, 99))[0]
    drain(drainer)
    retry_dead(engine, ids=[old])
    assert drain(drainer).superseded == 1
    assert statuses(engine)[old][0] == "superseded" and statuses(engine)[new][0] == "done"
    assert [p["balance"] for p in sandbox.pushes] == [10, 99]


def test_a_dead_item_does_not_block_its_target(engine, drainer, sandbox):
    first, second = insert(engine, message_item("m1", "a"), message_item("m2", "a"))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE outbox SET status = 'dead', last_error = 'x' WHERE id = :id"), {"id": first})
    assert drain(drainer).sent == 1 and statuses(engine)[second][0] == "done"


def test_two_drainers_at_once_never_send_an_item_twice(engine, database_url, host, sandbox):
    items = [card_item(i, i) for i in range(1, 31)] + [message_item(f"m{i}", "a") for i in range(10)]
    ids = insert(engine, *items)
    settings = make_settings(host, database_url, sandbox.base_url)
    summaries = []

    def run() -> None:
        own = storage.open_database(database_url)
        try:
            summaries.append(asyncio.run(Drainer(own, host, settings).drain()))
        finally:
            own.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(summaries) == 2
    assert sum(s.sent for s in summaries) == 40
    assert sorted(p["member_id"] for p in sandbox.pushes) == list(range(1, 31))
    assert [m["msg_id"] for m in sandbox.messages] == [f"m{i}" for i in range(10)]
    assert statuses(engine) == {i: ("done", 1, None) for i in ids}


def test_an_expired_claim_is_taken_over_and_a_live_one_is_left(engine, drainer, sandbox):
    now = utcnow()
    crashed, live = insert(engine, card_item(1, 10), card_item(2, 20), status="sending", attempts=1)
    with engine.begin() as conn:
        for item, at in ((crashed, now - timedelta(seconds=1)), (live, now + timedelta(minutes=5))):
            conn.execute(sa.text("UPDATE outbox SET available_at = :at WHERE id = :id").bindparams(
                sa.bindparam("at", type_=sa.DateTime())), {"at": at.replace(tzinfo=None), "id": item})
    assert drain(drainer).sent == 1
    assert statuses(engine)[crashed] == ("done", 2, None) and statuses(engine)[live][0] == "sending"
    drainer.clock = lambda: utcnow() + timedelta(minutes=10)
    assert drain(drainer).sent == 1
    assert statuses(engine)[live] == ("done", 2, None)
    assert [p["member_id"] for p in sandbox.pushes] == [1, 2]


def test_a_killed_drainer_is_resumed(engine, database_url, drainer, sandbox, tmp_path):
    held, after = insert(engine, card_item(1, 10), card_item(2, 20))
    sandbox.faults[1] = "hold"
    config = write_config(tmp_path / "siyu.toml", database_url, sandbox.base_url)
    env = {k: v for k, v in os.environ.items() if k != "SIYU_CONFIG"}
    proc = subprocess.Popen(preexec_fn=interruptible, args=[sys.executable, "-m", "tests.hub.outbox_helpers", "--config", str(config),
                             "outbox", "drain", "--lease", "30"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert sandbox.arrived.wait(60), proc.stderr.read1().decode() if proc.poll() is not None else "no push"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert statuses(engine)[held] == ("sending", 1, None)
    sandbox.faults.clear()
    sandbox.release.set()
    assert drain(drainer).sent == 1  # the claim is still live: only the item of another target goes
    assert statuses(engine)[held][0] == "sending" and statuses(engine)[after][0] == "done"
    drainer.clock = lambda: utcnow() + timedelta(seconds=31)
    assert drain(drainer).sent == 1
    assert statuses(engine)[held] == ("done", 2, None)
    assert sandbox.count(1) == 2  # sent again after the crash, as an idempotent push allows


def test_cli_list_drain_retry(engine, database_url, host, sandbox, tmp_path):
    sandbox.faults[4] = "down"
    config = write_config(tmp_path / "siyu.toml", database_url, sandbox.base_url)
    insert(engine, card_item(4, 40), message_item("m1", "a", text="secret text"))

    def siyu(*args):
        context = Context()
        context._host = host
        return CliRunner().invoke(build_app(context), ["--config", str(config), *args, "--json"])

    listed = siyu("outbox", "list")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)["items"]
    assert [(r["kind"], r["status"]) for r in rows] == [("message", "pending"), ("card_update", "pending")]
    assert "secret text" not in listed.output
    drained = siyu("outbox", "drain")
    assert drained.exit_code == 1
    doc = json.loads(drained.output)
    assert (doc["ok"], doc["sent"], doc["dead"], doc["retries"]) == (False, 1, 1, 2)
    dead = [r for r in json.loads(siyu("outbox", "list").output)["items"] if r["status"] == "dead"]
    assert len(dead) == 1 and "HTTP 503" in dead[0]["last_error"]
    sandbox.faults.clear()
    retried = siyu("outbox", "retry")
    assert retried.exit_code == 0 and json.loads(retried.output)["retried"] == [dead[0]["id"]]
    again = siyu("outbox", "drain")
    assert again.exit_code == 0 and json.loads(again.output)["sent"] == 1
    assert siyu("outbox", "list", "--status", "bogus").exit_code == 2


def test_an_interrupted_drainer_gives_its_item_back(engine, database_url, sandbox, tmp_path):
    held = insert(engine, card_item(1, 10))[0]
    sandbox.faults[1] = "hold"
    config = write_config(tmp_path / "siyu.toml", database_url, sandbox.base_url)
    env = {k: v for k, v in os.environ.items() if k != "SIYU_CONFIG"}
    proc = subprocess.Popen(preexec_fn=interruptible, args=[sys.executable, "-m", "tests.hub.outbox_helpers", "--config", str(config),
                             "outbox", "drain"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert sandbox.arrived.wait(60), "the drainer never pushed"
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        proc.kill()
    assert statuses(engine)[held] == ("pending", 1, None)


def test_a_card_update_the_platform_took_is_what_the_member_card_says_was_pushed(engine, drainer, sandbox):
    from schemas.tables import MemberCardRow, MemberRow

    with engine.begin() as conn:
        member_id = conn.execute(sa.insert(MemberRow.__table__).values(balance=1234, lifetime_points=1234, level=2)
                                 .returning(MemberRow.__table__.c.member_id)).scalar_one()
        conn.execute(sa.insert(MemberCardRow.__table__).values(member_id=member_id, platform="cardtest",
                                                               account_id="shop", card_no=f"NO{member_id}"))
    insert(engine, card_item(member_id, 1234, level=2))
    assert drain(drainer).sent == 1
    with engine.connect() as conn:
        card = conn.execute(sa.select(MemberCardRow.__table__)).one()
    assert (card.balance, card.level) == (1234, 2)  # the report counts this card in step
