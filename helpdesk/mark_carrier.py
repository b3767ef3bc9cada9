"""Marks of sends that ride in the next intake transaction (SQLite), written alone only if none comes.

SQLite has one writer. The delivery worker's mark of a receipt just sent (one handed to it by the
intake, ``helpdesk/handoff.py``; other items are marked at once, so the workspace shows a staff reply sent
as soon as it is) is a writer transaction of its own, taken the moment the receipt has gone: the moment the
requester's next message arrives and its intake wants the same writer. Inside ``helpdesk run`` the intake
of this process carries the marks waiting then in its own transaction (``DeliveryWorker.carry_marks``,
wired as ``Desk.carry_marks``): one writer turn and one commit for both, and the intake never waits behind
a mark. A mark no intake carried within ``within`` seconds is written alone, as before; one whose carrying
transaction rolled back waits for the next carrier. Marks that fill every sending slot (``full``) are written
alone at once: the worker can send nothing until they are written, and waiting for an intake that may not
come (a burst already taken) held delivery to one round of slots per ``within`` (500 receipts of 50 chats
went out over 26 s, at 8 slots and 0.5 s).

Nothing changes for at-least-once: until its mark is written an item stays leased (the lease, minutes, is
far longer than ``within``), and a crash before it means a send again after the lease, as a crash between
send and mark always did. Each send keeps its sending slot until its mark is written, so at most
``concurrency`` items are ever sent and not yet marked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Mark = TypeVar("Mark")


class MarkCarrier(Generic[Mark]):
    def __init__(
        self, write: Callable[[list[Mark]], Awaitable[object]], *, within: float, full: int | None = None
    ) -> None:
        self._write = write
        self._within = within
        self._full = full
        self._waiting: list[tuple[Mark, asyncio.Future[None]]] = []
        self._timer: asyncio.Task[None] | None = None
        # Writes started because the marks were full: tasks of their own, so that a submitter cancelled
        # meanwhile never leaves the others' marks unwritten.
        self._writing: set[asyncio.Task[None]] = set()

    async def submit(self, mark: Mark) -> None:
        """Returns once ``mark`` is written, by a carrying transaction's commit or on its own."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((mark, written))
        if self._full is not None and len(self._waiting) >= self._full:
            task = asyncio.create_task(self._write_alone(self.take()), name="full marks written alone")
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)
        else:
            self._arm()
        await written

    def take(self) -> list[tuple[Mark, asyncio.Future[None]]]:
        """The marks waiting now, for a transaction to carry; hand them back with ``carried``."""
        taken, self._waiting = self._waiting, []
        return taken

    def carried(self, taken: list[tuple[Mark, asyncio.Future[None]]], committed: bool) -> None:
        if not committed:
            self._waiting[:0] = taken
            self._arm()
            return
        for _, written in taken:
            if not written.done():
                written.set_result(None)

    async def flush(self) -> None:
        """Write what waits now (a graceful stop); a timer still asleep is left running only for marks still
        to come. One already writing is never cancelled: the marks it took would be written by nobody."""
        taken = self.take()
        if taken:
            await self._write_alone(taken)
        if not self._waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._later(), name="marks written alone")

    async def _later(self) -> None:
        await asyncio.sleep(self._within)
        # Awake: no longer the timer a flush may cancel (marks arriving while it writes arm a new one).
        self._timer = None
        taken = self.take()
        if taken:
            await self._write_alone(taken)
        if self._waiting:
            self._arm()

    async def _write_alone(self, taken: list[tuple[Mark, asyncio.Future[None]]]) -> None:
        try:
            await self._write([mark for mark, _ in taken])
        except Exception as exc:
            for _, written in taken:
                if not written.done():
                    written.set_exception(exc)
            return
        for _, written in taken:
            if not written.done():
                written.set_result(None)
