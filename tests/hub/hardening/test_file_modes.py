"""Files the hub creates that hold secrets (the database, the phone key, siyu.toml) are mode 600."""

from __future__ import annotations

import os
import sys

import pytest
import sqlalchemy as sa

from hub.storage import database as storage
from tests.hub.test_cli import run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_a_sqlite_database_the_hub_creates_is_mode_600(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "data" / "hub.db"
        engine = storage.create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert mode(path) == 0o600
        for extra in ("-wal", "-shm"):
            side = tmp_path / "data" / f"hub.db{extra}"
            if side.exists():
                assert mode(side) == 0o600
        engine.dispose()
    finally:
        os.umask(old)


def test_an_existing_database_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    engine = storage.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    engine.dispose()
    assert mode(path) == 0o640


def test_siyu_init_writes_database_key_and_config_mode_600(tmp_path):
    result = run(["init"], tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("siyu.db", "siyu.key", "siyu.encryption.key", "siyu.toml"):
        assert mode(tmp_path / name) == 0o600, name
