"""``INSERT … ON CONFLICT`` for the session's database: both SQLite and PostgreSQL have it, in their own
SQLAlchemy construct. The one place that picks it (counters, secrets, presence, a chat's /new)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_or(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` that can say what to do on a unique clash (``on_conflict_do_…``)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
