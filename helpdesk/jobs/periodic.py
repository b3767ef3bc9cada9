"""The loop every periodic job shares: run a step now and every `interval` seconds until `stop` is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval: float,
    stop: asyncio.Event,
    step: Callable[[], Awaitable[object]],
    *,
    log: logging.Logger,
    failure: str,
) -> None:
    """Await `step()` now and then every `interval` seconds; a failing step is logged and tried again."""
    while not stop.is_set():
        try:
            await step()
        except Exception:
            # A failing run must not stop the service; the next check tries again.
            log.exception(failure)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
