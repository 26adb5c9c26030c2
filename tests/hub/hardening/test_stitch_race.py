"""Two writers stitching the same new fans at once (two ``siyu sync``): the second waits or
retries, never crashes, and every fan ends in exactly one member."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.people import identity
from schemas.tables import FanIdentityKeyRow, MemberRow
from tests.hub.helpers_members import add_fan, grouping


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table.__table__)).scalar_one()


def test_a_bulk_stitch_that_lost_the_race_to_another_writer_does_not_crash(engine, monkeypatch):
    add_fan(engine, "douyin", "d1", phone="13800138000")
    add_fan(engine, "wecom", "w1", phone="13800138000", union_id="oU1")
    add_fan(engine, "alipay", "a1", phone="13800138000")
    add_fan(engine, "kuaishou", "k1", phone="13900139000")
    real = identity.run_write
    raced = []

    def other_writer_first(engine_, work):
        if not raced:  # another process commits the same plan between our read and our write
            raced.append(True)
            monkeypatch.setattr(identity, "run_write", real)
            identity.stitch_all(engine)
            monkeypatch.setattr(identity, "run_write", other_writer_first)
        return real(engine_, work)

    monkeypatch.setattr(identity, "run_write", other_writer_first)
    identity.stitch_all(engine)  # used to raise IntegrityError (UNIQUE fan_identity_keys), parameters and all
    assert raced
    assert grouping(engine) == {frozenset({"douyin:d1", "wecom:w1", "alipay:a1"}), frozenset({"kuaishou:k1"})}
    assert _count(engine, MemberRow) == 2
    with engine.connect() as conn:
        table = FanIdentityKeyRow.__table__
        keys = conn.execute(sa.select(table.c.fan_id, table.c.kind, table.c.value)).all()
    assert len(keys) == len(set(keys))


def test_a_race_lost_every_time_is_one_line_without_parameters(engine, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from hub.errors import StorageError

    add_fan(engine, "douyin", "d9", phone="13700137000")

    def always_lost(engine_, work):
        raise IntegrityError("INSERT INTO fan_identity_keys ...", {"value": "secret-hash-value"},
                             Exception("UNIQUE constraint failed: fan_identity_keys.fan_id"))

    monkeypatch.setattr(identity, "run_write", always_lost)
    with pytest.raises(StorageError) as caught:
        identity.stitch(engine, [1])
    message = str(caught.value)
    assert "UNIQUE constraint failed" in message and "secret-hash-value" not in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_two_siyu_members_stitch_at_once_both_succeed(database_url, tmp_path):
    import os
    import subprocess

    from hub.storage import database as storage
    from tests.hub.test_cli import SIYU

    (tmp_path / "siyu.toml").write_text(
        f'[database]\nurl = "{database_url}"\n[security]\nphone_key = "test-phone-key-0123456789abcdef"\n')
    env = {**os.environ, "SIYU_CONFIG": str(tmp_path / "siyu.toml")}
    engine = storage.open_database(database_url)
    try:
        for round_ in range(3):
            for n in range(150):
                add_fan(engine, "douyin", f"r{round_}-d{n}", phone=f"1380000{n:04d}")
                add_fan(engine, "wecom", f"r{round_}-w{n}", phone=f"1380000{n:04d}")
            runs = [subprocess.Popen([SIYU, "members", "stitch", "--json"], env=env, cwd=tmp_path,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            for run in runs:
                out, err = run.communicate(timeout=120)
                assert run.returncode == 0, err[-500:]
                assert "Traceback" not in err
        with engine.connect() as conn:
            table = FanIdentityKeyRow.__table__
            keys = conn.execute(sa.select(table.c.fan_id, table.c.kind, table.c.value)).all()
        assert len(keys) == len(set(keys))
        groups = grouping(engine)
        assert sorted(map(len, groups)) == [6] * 150  # each phone: 3 rounds x 2 platforms, one member
    finally:
        engine.dispose()
