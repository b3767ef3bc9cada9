"""A transaction that can hold SAVEPOINTs on both databases (one commit for many units of work)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

R = TypeVar("R")


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


class Refused(Exception):
    """A unit of a group run without savepoints failed for a reason a retry would not cure: the group's
    transaction must be rolled back whole (``error`` is the unit's own)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def savepoints_on_refusal(
    attempt: Callable[[bool], Awaitable[list[R | Exception]]], count: int
) -> list[R | Exception]:
    """Run a group of ``count`` units first without a SAVEPOINT each (two round trips and a flush per unit,
    and almost every group goes in whole); when ``attempt(False)`` raises ``Refused``, its transaction is
    gone and the group runs again with one each, ``attempt(True)``, so the refused unit rolls back alone.
    A group of one needs no second run: its rolled-back transaction is what its savepoint would leave."""
    try:
        return await attempt(False)
    except Refused as refused:
        if count == 1:
            return [refused.error]
        return await attempt(True)


async def in_unit(session: AsyncSession, savepoint: bool, work: Callable[[], Awaitable[R]]) -> R:
    """``work`` inside its own SAVEPOINT when asked for one."""
    if not savepoint:
        return await work()
    async with session.begin_nested():
        return await work()
