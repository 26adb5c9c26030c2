"""The database: engines, migrations and the schema check.

SQLite is the embedded default (a file in WAL mode, foreign keys on, a busy timeout); PostgreSQL
(``postgresql+psycopg://…``) is the scale-out store.  Both are migrated by the same Alembic
scripts shipped in ``hub/storage/migrations``.  A command that needs the database calls
:func:`open_database`, which refuses to run on a schema that is behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from hub.errors import SchemaOutOfDate, StorageError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = [
    "create_engine",
    "current_revision",
    "database_reason",
    "head_revision",
    "open_database",
    "safe_url",
    "script_head",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_REVISION = "0007"
"""The newest migration in :data:`MIGRATIONS`: the schema this code reads and writes.  Every
command checks a database against it, so it is written here rather than found by loading Alembic
and every migration script (a third of a short command's start-up); a test checks that it is
Alembic's head (:func:`script_head`)."""
SQLITE_BUSY_TIMEOUT_MS = 30_000


def safe_url(url: str | sa.URL) -> str:
    """The URL with any password masked, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def database_reason(exc: SQLAlchemyError) -> str:
    """The first line of what the database driver said (no statement, no parameters), or ``""``."""
    orig = getattr(exc, "orig", None)
    return str(orig).strip().splitlines()[0] if orig is not None and str(orig).strip() else ""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # statement journals and materialised subqueries in memory: a sync page's multi-row insert
    # otherwise spilled its statement journal to a new temporary file, about a hundred writes a page
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _create_private(path: Path) -> None:
    """Create an empty SQLite file readable by its owner only (its ``-wal``/``-shm`` files inherit
    the mode); an existing file keeps its own."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def json_text(value: Any) -> str:
    """A JSON column's value as the text the database stores: compact JSON written by
    pydantic-core's serializer (a few times faster than :func:`json.dumps` on the small documents
    a row holds, which a sync writes one or more of per record)."""
    return to_json(value).decode()


def create_engine(url: str, *, create_dirs: bool = True, **kwargs: Any) -> sa.Engine:
    """An engine for ``url``, configured for its backend.

    :param create_dirs: create a SQLite file's missing folders; when false, a missing folder (a
        typo in the path, most often) is refused.
    :raises StorageError: when the URL names a driver that is not installed or is malformed, or
        a SQLite file's folder is missing and ``create_dirs`` is false.
    """
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                folder = Path(database).expanduser().parent
                if not create_dirs and not folder.is_dir():
                    raise StorageError(f"cannot use database {safe_url(url)}: folder {folder} does not exist")
                folder.mkdir(parents=True, exist_ok=True)
                _create_private(Path(database).expanduser())
            engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                                      json_serializer=json_text, **kwargs)
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True, json_serializer=json_text, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StorageError(f"cannot use database {safe_url(url)}: {exc.__class__.__name__}") from exc
    return engine


def _alembic_config(connection: sa.Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The revision a database must be at for this code (:data:`SCHEMA_REVISION`)."""
    return SCHEMA_REVISION


def script_head() -> str:
    """The head of the migration scripts, as Alembic finds it (several heads are an error)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_alembic_config()).get_heads()
    if len(heads) != 1:
        raise StorageError(f"migrations have several heads: {', '.join(sorted(heads))}")
    return heads[0]


def _connect(engine: sa.Engine) -> sa.Connection:
    try:
        return engine.connect()
    except OperationalError as exc:
        reason = database_reason(exc) or exc.__class__.__name__
        raise StorageError(f"cannot reach database {safe_url(engine.url)}: {reason}") from exc


def _revision(conn: sa.Connection) -> str | None:
    """The revision Alembic recorded in the database (``None``: never migrated)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def current_revision(engine: sa.Engine) -> str | None:
    """The database's schema revision (``None``: no schema yet)."""
    with _connect(engine) as conn:
        return _revision(conn)


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply pending migrations; returns ``(revision before, revision after)``."""
    from alembic import command

    with _connect(engine) as conn:
        before = _revision(conn)
        conn.rollback()  # the look-up's transaction ends before Alembic begins its own
        command.upgrade(_alembic_config(conn), revision)
        conn.commit()
        if conn.dialect.name == "postgresql":
            apply_job_engine_schema(conn)
        after = _revision(conn)
    return before, after or ""


JOB_ENGINE_SCHEMA = "procrastinate"
"""The PostgreSQL schema holding the job engine's tables (procrastinate), apart from the hub's own."""


def apply_job_engine_schema(conn: sa.Connection) -> bool:
    """Create the job engine's tables (procrastinate's own schema SQL) in :data:`JOB_ENGINE_SCHEMA`
    on PostgreSQL, unless they exist; returns whether they were created.  Committed."""
    exists = conn.exec_driver_sql(
        "SELECT to_regclass(%(name)s) IS NOT NULL", {"name": f"{JOB_ENGINE_SCHEMA}.procrastinate_jobs"}).scalar()
    if exists:
        return False
    from procrastinate.schema import SchemaManager

    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {JOB_ENGINE_SCHEMA}")
    cursor.execute(f"SET LOCAL search_path TO {JOB_ENGINE_SCHEMA}")
    cursor.execute(SchemaManager.get_schema().encode())  # no parameters: its text is sent as it is
    cursor.close()
    conn.commit()
    return True


def open_database(url: str) -> sa.Engine:
    """An engine for a database whose schema is current.

    :raises StorageError: the database cannot be reached.
    :raises SchemaOutOfDate: migrations are pending.
    """
    engine = create_engine(url)
    current = current_revision(engine)
    if current != head_revision():
        engine.dispose()
        state = "has no schema" if current is None else f"is at revision {current}"
        raise SchemaOutOfDate(
            f"database {safe_url(url)} {state}, this siyu-hub needs {head_revision()}: run `siyu db upgrade`"
        )
    return engine
