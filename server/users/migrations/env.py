"""Alembic's environment: the connection is the one `server/users/migrate.py` holds its
lock on, handed in through the config's attributes."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from server.users.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations with `python -m server migrate`, not the alembic command")
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite changes most of a table by copying it: Alembic's batch mode does that.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
