"""Fixtures shared by the whole suite: databases on SQLite and on PostgreSQL.

PostgreSQL tests use the server on 127.0.0.1:5432 (``SIYU_TEST_POSTGRES_URL`` overrides it).  Each
run migrates one template database and gives every test its own copy, dropped afterwards.  When no
server answers, those tests are skipped with the reason shown; with ``SIYU_REQUIRE_POSTGRES=1``
(as ``.ci/run`` sets) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.storage import database as storage

POSTGRES_URL = os.environ.get("SIYU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PHONE_KEY = "test-phone-key-0123456789abcdef"


def _admin_engine() -> sa.Engine:
    return sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def _db_url(name: str) -> str:
    return sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def _drop(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        reason = f"no PostgreSQL answers at {storage.safe_url(POSTGRES_URL)} ({exc.orig.__class__.__name__})"
        if os.environ.get("SIYU_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}, and SIYU_REQUIRE_POSTGRES=1")
        pytest.skip(f"{reason}; set SIYU_REQUIRE_POSTGRES=1 to fail instead")
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: sa.Engine) -> Iterator[str]:
    name = f"siyu_test_{os.getpid()}_template"
    _drop(postgres_admin, name)
    with postgres_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = storage.create_engine(_db_url(name))
    storage.upgrade(engine)
    engine.dispose()
    yield name
    _drop(postgres_admin, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "siyu.db"
    engine = storage.create_engine(f"sqlite:///{path}")
    storage.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def blank_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on each backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    name = f"siyu_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield _db_url(name)
    _drop(admin, name)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own for each test, on each backend."""
    if backend == "sqlite":
        path = tmp_path / "siyu.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin = request.getfixturevalue("postgres_admin")
    template = request.getfixturevalue("postgres_template")
    name = f"siyu_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _db_url(name)
    _drop(admin, name)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = storage.open_database(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def phone_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIYU_PHONE_KEY", PHONE_KEY)
    return PHONE_KEY
