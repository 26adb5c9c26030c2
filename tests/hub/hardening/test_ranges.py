"""Numbers past what the ledger can hold, and times that make no sense, are one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub import ledger
from hub.cli import main
from hub.errors import InvalidPosting
from hub.ledger.lots import MAX_POINTS
from hub.storage import database as storage
from schemas.tables import LedgerEntryRow, MemberRow
from tests.hub.helpers_members import new_member

LIMIT = MAX_POINTS  # the points columns are INTEGER: 32-bit on PostgreSQL


@pytest.fixture
def siyu(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "siyu.toml").write_text(
        f'[database]\nurl = "{database_url}"\n[security]\nphone_key = "test-phone-key-0123456789abcdef"\n')
    monkeypatch.setenv("SIYU_CONFIG", str(tmp_path / "siyu.toml"))

    def run(*args: str, code: int | tuple[int, ...] = 0) -> Any:
        capsys.readouterr()
        assert main([*args, "--json"]) in ((code,) if isinstance(code, int) else code)
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "Traceback" not in out
        return (json.loads(out) if out.strip() else {"ok": False}), err

    return run


def entries(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(LedgerEntryRow.__table__)).scalar_one()


def balance(engine: sa.Engine, member: int) -> int:
    with engine.connect() as conn:
        table = MemberRow.__table__
        return conn.execute(sa.select(table.c.balance).where(table.c.member_id == member)).scalar_one()


def test_points_past_the_limit_are_refused_and_nothing_is_written(engine):
    member = new_member(engine)
    with pytest.raises(InvalidPosting, match="largest"):
        ledger.post(engine, member_id=member, points=LIMIT + 1, reason="x", key="k-1")
    assert entries(engine) == 0
    ledger.post(engine, member_id=member, points=LIMIT, reason="x", key="k-2")
    with pytest.raises(InvalidPosting, match="largest"):
        ledger.post(engine, member_id=member, points=1, reason="x", key="k-3")
    assert entries(engine) == 1 and balance(engine, member) == LIMIT


def test_a_merge_that_would_pass_the_limit_is_refused(engine):
    from hub.people import members

    a, b = new_member(engine), new_member(engine)
    ledger.post(engine, member_id=a, points=LIMIT, reason="x", key="a")
    ledger.post(engine, member_id=b, points=5, reason="x", key="b")
    with pytest.raises(InvalidPosting, match="largest"):
        members.merge(engine, a, b, reason="same person", actor="test")
    assert (balance(engine, a), balance(engine, b)) == (LIMIT, 5)


def test_the_cli_refuses_out_of_range_points_and_past_expiry_in_one_line(siyu, database_url):
    engine = storage.open_database(database_url)
    member = str(new_member(engine))
    for points in (LIMIT + 1, 2**63, 2**64):  # refused by the ledger (1) or as a usage error (2)
        doc, err = siyu("ledger", "post", "--member", member, "--points", str(points), "--reason", "x", "--key", "k",
                        code=(1, 2))
        assert doc["ok"] is False and sum("rror" in line for line in err.splitlines()) == 1  # one error line
    doc, err = siyu("ledger", "post", "--member", member, "--points", "10", "--reason", "x", "--key", "k",
                    "--expires-at", "2001-01-01T00:00:00+08:00", code=1)
    assert doc["error"]["type"] == "InvalidPosting" and "past" in err
    assert entries(engine) == 0
    other = str(new_member(engine))
    siyu("ledger", "post", "--member", member, "--points", str(LIMIT), "--reason", "x", "--key", "top")
    siyu("ledger", "post", "--member", other, "--points", "1", "--reason", "x", "--key", "one")
    doc, err = siyu("members", "merge", member, other, "--reason", "same", code=1)
    assert doc["ok"] is False and len(err.strip().splitlines()) == 1
    engine.dispose()


@pytest.mark.parametrize("args", [
    ("ledger", "balance", str(2**70)),
    ("ledger", "history", str(2**70)),
    ("ledger", "reverse", str(2**70), "--key", "k"),
    ("ledger", "post", "--member", str(2**70), "--points", "1", "--reason", "x", "--key", "k"),
    ("members", "show", str(2**70)),
    ("members", "merge", str(2**70), "1", "--reason", "x"),
])
def test_ids_past_the_id_columns_are_usage_errors_not_tracebacks(database_url, tmp_path, monkeypatch, capsys, args):
    (tmp_path / "siyu.toml").write_text(
        f'[database]\nurl = "{database_url}"\n[security]\nphone_key = "test-phone-key-0123456789abcdef"\n')
    monkeypatch.setenv("SIYU_CONFIG", str(tmp_path / "siyu.toml"))
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code != 0 and "Traceback" not in out + err and "OverflowError" not in out + err
