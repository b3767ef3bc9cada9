"""Alembic owns the schema: one head, and the migrations build exactly what the models describe."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from helpdesk.db.engine import make_engine
from helpdesk.db.migrate import current_revision_heads
from helpdesk.db.models import Base, mapped_schema_name


def test_one_head(database_url: str) -> None:
    assert len(current_revision_heads(database_url)) == 1


def test_migrated_schema_matches_models(database_url: str) -> None:
    def diff(connection: Connection) -> list:
        context = MigrationContext.configure(connection, opts={"include_name": mapped_schema_name})
        return compare_metadata(context, Base.metadata)

    async def compare() -> list:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(diff)
        finally:
            await engine.dispose()

    assert asyncio.run(compare()) == []
