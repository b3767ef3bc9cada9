"""Watching PostgreSQL row locks from outside a test's transactions."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def waiting_on_a_lock(engine: AsyncEngine, task: asyncio.Task[object]) -> bool:
    """Whether a transaction of this database waits on a lock, watched until one does or ``task`` ends
    (bounded: about ten seconds)."""
    for _ in range(2000):
        async with engine.connect() as watcher:
            if await watcher.scalar(_WAITING):
                return True
        if task.done():
            return False
        await asyncio.sleep(0.005)
    return False
