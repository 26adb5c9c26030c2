"""Throwaway databases for the benchmarks: a SQLite file, or a PostgreSQL database on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def throwaway(backend: str, folder: Path) -> tuple[str, Callable[[], None]]:
    """A new, empty database and the function that removes it (a no-op for SQLite, whose file
    goes with ``folder``)."""
    if backend == "sqlite":
        return f"sqlite:///{folder / (uuid.uuid4().hex + '.db')}", lambda: None
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"siyu_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop
