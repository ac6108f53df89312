"""Alembic's entry point for Revisor's migrations, run programmatically by ``Database.migrate``.

Why this file exists: Alembic runs it for every migration command. ``Database.migrate`` hands it
an open connection, already inside a transaction and holding the migration lock
(``config.attributes["connection"]``); ``alembic revision --autogenerate`` from the command line
gives only a URL. Either way the schema to compare against is ``revisor.db.models``.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from revisor.db import backups as _backups  # noqa: F401 - registers the backup tables
from revisor.db import jobs as _jobs  # noqa: F401 - registers the jobs' tables
from revisor.db.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render Revisor's types as plain SQLAlchemy types, so migrations never import models."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # ALTERs that SQLite lacks become table copies
        transactional_ddl=True,  # SQLite's DDL is transactional once SQLAlchemy emits BEGIN
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use revisor.db.Database.migrate")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
main()
