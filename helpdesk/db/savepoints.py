"""A transaction that can hold SAVEPOINTs on both databases (one commit for many units of work)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def begin_for_savepoints(session: AsyncSession) -> None:
    """Open ``session``'s transaction for real before its first SAVEPOINT.

    Python's sqlite3 driver sends BEGIN only before a write, so a SAVEPOINT coming first would itself
    start the transaction and its RELEASE would commit it: a group would commit once per member. BEGIN
    IMMEDIATE also takes SQLite's write lock at once (waiting out the busy timeout), so a group never
    fails half-way on upgrading a read lock. PostgreSQL's transaction is real from its first statement.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
