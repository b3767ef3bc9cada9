"""Group commit: concurrent callers' work done in one batch, each caller answered only after it.

A commit costs a round trip and an fsync whatever it carries, so work that arrives together (messages of
different chats, deliveries finished at the same time) is cheaper committed together. The first caller
starts a batch after one event-loop turn, so everyone who arrived in that turn joins it; whoever arrives
while a batch runs waits for the next one, which takes all of them (up to ``max_batch``). Nobody waits
for a timer: an idle desk commits each message at once, a busy one in ever larger groups. One batch runs
at a time.

``run_batch`` answers every item, each with its result or the exception that item alone failed with; if
``run_batch`` itself raises (the commit failed), every caller of the batch gets that exception: nothing
in it was committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchRunner = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, run_batch: BatchRunner[Item, Result], *, max_batch: int = 50) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0  # batches run: how well arrivals were grouped

    async def submit(self, item: Item) -> Result:
        """``item``'s result once the batch carrying it is committed; its exception if it failed."""
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await answer

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # everyone arriving in this loop turn joins the batch
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            live = [(item, answer) for item, answer in batch if not answer.cancelled()]
            if not live:
                continue
            self.batches += 1
            try:
                results = await self._run_batch([item for item, _ in live])
                if len(results) != len(live):  # a caller left without an answer would wait for ever
                    raise RuntimeError(f"batch answered {len(results)} of {len(live)} items")
            except BaseException as exc:
                for _, answer in live:
                    if not answer.done():
                        answer.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise  # cancellation: the callers have been told, the runner stops
                continue
            for (_, answer), result in zip(live, results, strict=True):
                if answer.done():
                    continue
                if isinstance(result, BaseException):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)
