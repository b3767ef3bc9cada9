"""What the stand-in received, and waiting for it: the record every other section writes into."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from standins.telegram_api.wire import ApiCall


class CallLog:
    """The calls received, in order, and one condition that wakes whoever waits on the stand-in's state."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        # Notified on every recorded call and every change of queued updates or webhook.
        self._changed = asyncio.Condition()
        self._stopping = False
        self._background: set[asyncio.Task[None]] = set()

    def calls_to(self, method: str) -> list[ApiCall]:
        name = method.lower()
        return [c for c in self.calls if c.method.lower() == name]

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        # A bound for a loaded machine, not an expected delay: a call that comes returns at once.
        timeout: float = 30.0,  # noqa: ASYNC109 - the tests' familiar spelling; applied with wait_for
        *,
        since: int = 0,
    ) -> ApiCall:
        """The first call to ``method`` (from ``calls[since:]``) matching ``predicate``; waits for it.

        Already recorded calls count: pass ``since=len(api.calls)`` to wait only for new ones.
        """
        name = method.lower()

        def find() -> ApiCall | None:
            for call in self.calls[since:]:
                if call.method.lower() == name and (predicate is None or predicate(call)):
                    return call
            return None

        async def wait() -> ApiCall:
            async with self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = [c.params for c in self.calls_to(method)]
            raise AssertionError(f"no matching {method} call within {timeout}s; calls seen: {seen}") from None

    def _append(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._notify_soon()

    def _notify_soon(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        # Waiters must be woken without making the HTTP answer wait on them.
        task = asyncio.get_running_loop().create_task(notify())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
