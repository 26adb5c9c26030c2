"""Alembic environment: runs on the connection that :mod:`hub.storage.database` hands it."""

from __future__ import annotations

from alembic import context

from schemas.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the hub runs these migrations
    raise RuntimeError("run migrations through `siyu db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
