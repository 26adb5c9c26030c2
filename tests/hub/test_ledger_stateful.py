"""Stateful property tests: random earn / redeem / reverse / expire / merge / split / undo /
replay sequences on SQLite and PostgreSQL, checked after every step against an in-memory model
and against ``ledger.verify``.

One database per backend for the whole run, emptied between examples.  ``SIYU_LEDGER_EXAMPLES``
sets the number of examples per backend (default 500; CI runs the default).
"""

from __future__ import annotations

import os
import time
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from hub import ledger

from hub.storage import database as storage
from hub.errors import HubError
from hub.people.members import FanRef, merge, split, undo
from schemas.tables import LedgerLotRow, MemberRow

from ..conftest import _db_url, _drop
from .helpers_members import T0, add_fan, new_member
from .ledger_model import Member as ModelMember
from .ledger_model import Model, Refused

EXAMPLES = int(os.environ.get("SIYU_LEDGER_EXAMPLES", "500"))
TABLES = ["ledger_lot_uses", "ledger_lots", "outbox", "member_changes", "ledger_entries", "fan_identity_keys",
          "blocked_identity_keys", "member_cards", "fans", "members"]
members_t = MemberRow.__table__
lots_t = LedgerLotRow.__table__


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("stateful") / "siyu.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        engine = storage.open_database(f"sqlite:///{path}")
        allow_resets(engine)
        yield engine
        engine.dispose()
        return
    admin = request.getfixturevalue("postgres_admin")
    template = request.getfixturevalue("postgres_template")
    name = f"siyu_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        # a throwaway test database: commits need not wait for the disk (visibility is unchanged)
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    engine = storage.open_database(_db_url(name))
    allow_resets(engine)
    yield engine
    engine.dispose()
    _drop(admin, name)


def allow_resets(engine: sa.Engine) -> None:
    """Drop the append-only triggers of this throwaway database, so examples can start empty.

    The triggers themselves are tested in ``test_ledger.py``; the machine checks its invariants
    against its model and ``verify`` after every step.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS ledger_entries_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")


def empty(engine: sa.Engine) -> None:
    """Empty every table the machine writes.  ``DELETE`` rather than ``TRUNCATE``: on these few
    rows it takes about 2 ms on PostgreSQL where ``TRUNCATE`` of ten tables takes about 120 ms."""
    with engine.begin() as conn:
        for table in TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table}")


class LedgerMachine(RuleBasedStateMachine):
    engine: sa.Engine

    runs = 0

    def __init__(self) -> None:
        super().__init__()
        LedgerMachine.runs += 1
        empty(self.engine)
        self.model = Model()
        self.now = T0
        self.keys = 0
        self.replayable: list[tuple[str, dict[str, Any], Any]] = []
        self.fan_names: dict[int, str] = {}

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    @initialize(n=st.integers(2, 4))
    def members(self, n: int) -> None:
        for i in range(n):
            member_id = new_member(self.engine)
            self.model.members[member_id] = ModelMember()
            for j in range(2):
                fan_id = add_fan(self.engine, "douyin", f"m{member_id}f{j}", member_id=member_id)
                self.model.members[member_id].fans.add(fan_id)
                self.fan_names[fan_id] = f"douyin:hq:m{member_id}f{j}"

    def pick(self, data: st.DataObject, live_only: bool = False) -> int:
        ids = sorted(m for m, v in self.model.members.items() if not live_only or v.merged_into is None)
        return data.draw(st.sampled_from(ids))

    def expect(self, refusal: str | None, call: Any) -> Any:
        if refusal is None:
            return call()
        with pytest.raises(HubError) as info:
            call()
        assert type(info.value).__name__ == refusal, f"expected {refusal}, got {info.value!r}"
        return None

    def check(self, fn: Any) -> str | None:
        try:
            fn()
        except Refused as refused:
            return refused.kind
        return None

    @rule(data=st.data(), points=st.integers(1, 400), expires=st.one_of(st.none(), st.integers(1, 20)),
          with_fan=st.booleans())
    def earn(self, data: st.DataObject, points: int, expires: int | None, with_fan: bool) -> None:
        member = self.pick(data)
        live = self.model.live(member)
        fans = sorted(self.model.members[live].fans)
        fan = data.draw(st.sampled_from(fans)) if with_fan and fans else None
        expires_at = self.now + timedelta(days=expires) if expires else None
        args = dict(member_id=member, points=points, reason="earn", key=self.key(), expires_at=expires_at,
                    fan_id=fan, now=self.now)
        posted = ledger.post(self.engine, **args)
        assert posted.created and posted.member_id == live
        self.model.earn(posted.entry.entry_id, member, points, fan, self.now, expires_at)
        self.replayable.append(("post", args, posted))

    @rule(data=st.data(), size=st.integers(1, 4), replay_one=st.booleans())
    def earn_page(self, data: st.DataObject, size: int, replay_one: bool) -> None:
        """A page through ``post_many``: its entries are ``post``'s (a later ``post`` of a key
        replays it), and a key posted before is a replay inside the page."""
        page, fresh = [], []
        for _ in range(size):
            member = self.pick(data)
            fans = sorted(self.model.members[self.model.live(member)].fans)
            fan = data.draw(st.one_of(st.none(), st.sampled_from(fans))) if fans else None
            expires = data.draw(st.one_of(st.none(), st.integers(1, 20)))
            expires_at = self.now + timedelta(days=expires) if expires else None
            args = dict(member_id=member, points=data.draw(st.integers(1, 400)), reason=data.draw(
                st.sampled_from(["earn", "积分 \"quoted\"", " padded "])), key=self.key(), expires_at=expires_at,
                fan_id=fan)
            page.append(ledger.Earn(**args))
            fresh.append(args)
        earlier = [r for r in self.replayable if r[0] == "post"]
        replayed = data.draw(st.sampled_from(earlier)) if replay_one and earlier else None
        if replayed is not None:
            page.insert(data.draw(st.integers(0, len(page))), ledger.Earn(**{
                k: v for k, v in replayed[1].items() if k != "now"}))
        posted = ledger.post_many(self.engine, page, now=self.now)
        for item, p in zip(page, posted, strict=True):
            if replayed is not None and item.key == replayed[1]["key"]:
                assert not p.created and p.entry == replayed[2].entry
                continue
            assert p.created and p.member_id == self.model.live(item.member_id)
            self.model.earn(p.entry.entry_id, item.member_id, item.points, item.fan_id, self.now, item.expires_at)
            self.replayable.append(("post", {**fresh.pop(0), "now": self.now}, p))

    @rule(data=st.data(), points=st.integers(1, 500))
    def redeem(self, data: st.DataObject, points: int) -> None:
        member = self.pick(data)
        args = dict(member_id=member, points=points, key=self.key(), now=self.now)
        refusal = self.check(lambda: self.model.redeem_check(member, points, self.now))
        posted = self.expect(refusal, lambda: ledger.redeem(self.engine, **args))
        if posted is not None:
            self.model.redeem(posted.entry.entry_id, member, points, self.now)
            self.replayable.append(("redeem", args, posted))

    @precondition(lambda self: self.model.entries)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        entry_id = data.draw(st.sampled_from(sorted(self.model.entries)))
        args = dict(key=self.key(), reason="correction")
        refusal = self.check(lambda: self.model.reverse_check(entry_id))
        posted = self.expect(refusal, lambda: ledger.reverse(self.engine, entry_id, **args))
        if posted is not None:
            assert posted.entry.reverses_entry_id == entry_id
            self.model.reverse(posted.entry.entry_id, entry_id)
            self.replayable.append(("reverse", {"entry_id": entry_id, **args}, posted))

    @rule(days=st.integers(1, 15))
    def tick(self, days: int) -> None:
        self.now += timedelta(days=days)

    @rule()
    def expire(self) -> None:
        due = self.model.due(self.now)
        written = ledger.expire(self.engine, as_of=self.now)
        assert [p.entry.points for p in written] == [-lot.remaining for lot in due]
        for lot, posted in zip(due, written, strict=True):
            self.model.expire(lot, posted.entry.entry_id)
        assert ledger.expire(self.engine, as_of=self.now) == []

    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        survivor, merged = self.pick(data), self.pick(data)
        refusal = self.check(lambda: self.model.merge_check(survivor, merged))
        change = self.expect(refusal, lambda: merge(self.engine, survivor, merged, reason="same person", actor="test"))
        if change is not None:
            self.model.merge(change.change_id, survivor, merged)

    @rule(data=st.data())
    def split(self, data: st.DataObject) -> None:
        member = self.pick(data, live_only=data.draw(st.booleans()))
        fans = sorted(self.model.members[self.model.live(member)].fans) or sorted(self.fan_names)
        fan = data.draw(st.sampled_from(fans))
        refusal = self.check(lambda: self.model.split_check(member, fan))
        change = self.expect(refusal, lambda: split(self.engine, member, [FanRef.parse(self.fan_names[fan])],
                                                    reason="different people", actor="test"))
        if change is not None:
            self.model.split(change.change_id, member, change.other_member_id, fan)

    @precondition(lambda self: self.model.changes)
    @rule(data=st.data())
    def undo(self, data: st.DataObject) -> None:
        change_id = data.draw(st.sampled_from(sorted(self.model.changes)))
        refusal = self.check(lambda: self.model.undo_check(change_id))
        change = self.expect(refusal, lambda: undo(self.engine, change_id, reason="mistake", actor="test"))
        if change is not None:
            self.model.undo(change.change_id, change_id)

    @precondition(lambda self: self.replayable)
    @rule(data=st.data(), conflicting=st.booleans())
    def replay(self, data: st.DataObject, conflicting: bool) -> None:
        op, args, first = data.draw(st.sampled_from(self.replayable))
        args = dict(args)
        if conflicting:
            if op == "reverse":
                args["reason"] = "another reason"
            else:
                args["points"] += 1
        call = {"post": lambda: ledger.post(self.engine, **args),
                "redeem": lambda: ledger.redeem(self.engine, **args),
                "reverse": lambda: ledger.reverse(self.engine, args.pop("entry_id"), **args)}[op]
        again = self.expect("IdempotencyConflict" if conflicting else None, call)
        if again is not None:
            assert not again.created and again.entry == first.entry

    @invariant()
    def matches_model(self) -> None:
        with self.engine.connect() as conn:
            rows = {r.member_id: r for r in conn.execute(sa.select(members_t))}
            held = dict(conn.execute(sa.select(lots_t.c.member_id, sa.func.sum(lots_t.c.remaining)).group_by(lots_t.c.member_id)).all())
            lots = conn.execute(sa.select(lots_t.c.member_id, lots_t.c.remaining, lots_t.c.earned, lots_t.c.expires_at)
                                .order_by(lots_t.c.lot_id)).all()
        assert [tuple(lot) for lot in lots] == [
            (lot.member, lot.remaining, lot.earned, lot.expires_at) for lot in self.model.lots]
        assert set(rows) == set(self.model.members)
        for member_id, m in self.model.members.items():
            row = rows[member_id]
            assert (row.balance, row.lifetime_points, row.merged_into) == (m.balance, m.lifetime, m.merged_into), member_id
            assert int(held.get(member_id) or 0) == m.balance
        assert ledger.verify(self.engine, policy=ledger.LedgerPolicy()) == []


@pytest.mark.slow
def test_ledger_state_machine(shared_engine: sa.Engine) -> None:
    LedgerMachine.engine = shared_engine
    LedgerMachine.runs = 0
    started = time.perf_counter()
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=12, deadline=None, derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    ))
    print(f"\n{shared_engine.dialect.name}: {LedgerMachine.runs} examples in {time.perf_counter() - started:.1f} s")
    assert LedgerMachine.runs >= EXAMPLES
