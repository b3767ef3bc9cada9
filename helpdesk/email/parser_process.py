"""The MIME parser in a worker process with a memory limit and a time limit.

The raw limits (helpdesk.email.limits) stop the known ways to make the stdlib parser explode, but MIME
part headers, attached messages and html2text are reachable too: a runaway there must take down a
helper, never the service. One worker is enough (intake parses one message at a time); it is started on
first use, kept between messages, and replaced when it dies or overruns.

The worker is a plain ``python -m helpdesk.email.parser_worker`` subprocess speaking length-prefixed
pickles over its stdin/stdout (both ends are ours), rather than multiprocessing: a spawned
multiprocessing child re-imports the parent's main script, and killing a stuck ProcessPoolExecutor
worker needs its private attributes. An asyncio subprocess is killed and awaited cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import sys
from collections.abc import Collection
from datetime import datetime

from helpdesk.messages import InboundMessage

log = logging.getLogger(__name__)

MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024
TIME_LIMIT_SECONDS = 30.0
# Starting the worker (an interpreter and the parser's imports) is not the message's fault: its own limit.
START_LIMIT_SECONDS = 60.0
DEFAULT_TARGET = "helpdesk.email.parse:parse_email"
_WRITE_SLICE = 1024 * 1024


class ParserLimitExceeded(RuntimeError):
    """The worker ran out of memory, died or overran its time; ``reason`` goes with the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ParserUnavailable(RuntimeError):
    """The worker could not even start: the service's problem, not the message's (it stays waiting)."""


class GuardedParser:
    """``await parse(raw, ...)`` runs the parser in the worker; ``ParserLimitExceeded`` when it runs away.

    ``target`` ("module:function", called as ``function(raw, **options)``) lets tests put a deliberately
    slow or greedy function in the worker's place.
    """

    def __init__(
        self,
        *,
        memory_bytes: int = MEMORY_LIMIT_BYTES,
        seconds: float = TIME_LIMIT_SECONDS,
        target: str = DEFAULT_TARGET,
    ) -> None:
        self.memory_bytes = memory_bytes
        self.seconds = seconds
        self.target = target
        self._process: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def parse(
        self,
        raw: bytes,
        *,
        own_addresses: Collection[str] = (),
        received_at: datetime | None = None,
        max_attachment_bytes: int | None = None,
        trusted_authserv_id: str | None = None,
    ) -> InboundMessage:
        if self._lock is None:
            self._lock = asyncio.Lock()
        options = {
            "own_addresses": tuple(own_addresses),
            "received_at": received_at,
            "max_attachment_bytes": max_attachment_bytes,
            "trusted_authserv_id": trusted_authserv_id,
        }
        request = pickle.dumps((bytes(raw), options), protocol=pickle.HIGHEST_PROTOCOL)
        # One message at a time: the time limit must measure this parse, not a queue behind another.
        async with self._lock:
            process = await self._ensure_process()
            try:
                status, value = await asyncio.wait_for(self._exchange(process, request), self.seconds)
            except TimeoutError:
                await self._discard()
                raise ParserLimitExceeded(f"parser exceeded its time limit ({self.seconds:g} s)") from None
            except (asyncio.IncompleteReadError, ConnectionError):
                code = await self._discard()
                raise ParserLimitExceeded(
                    f"parser exceeded its memory limit ({self._limit_mb}): the worker died (exit {code})"
                ) from None
        if status == "ok":
            assert isinstance(value, InboundMessage)
            return value
        if status == "memory":
            # The worker survived its MemoryError, but a fresh one is cheaper than trusting its heap.
            await self._discard()
            raise ParserLimitExceeded(f"parser exceeded its memory limit ({self._limit_mb})")
        assert isinstance(value, BaseException)
        raise value

    async def close(self) -> None:
        """End the worker: closing its stdin lets it exit by itself; killed if it does not."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    @property
    def _limit_mb(self) -> str:
        return f"{self.memory_bytes / (1024 * 1024):.0f} MB"

    async def _exchange(self, process: asyncio.subprocess.Process, request: bytes) -> tuple[str, object]:
        assert process.stdin is not None
        process.stdin.write(len(request).to_bytes(8, "big"))
        # In slices, draining between them: the transport would otherwise copy a 50 MB request whole.
        view = memoryview(request)
        for start in range(0, len(view), _WRITE_SLICE):
            process.stdin.write(view[start : start + _WRITE_SLICE])
            await process.stdin.drain()
        await process.stdin.drain()
        return await self._answer(process)

    async def _answer(self, process: asyncio.subprocess.Process) -> tuple[str, object]:
        assert process.stdout is not None
        size = int.from_bytes(await process.stdout.readexactly(8), "big")
        status, value = pickle.loads(await process.stdout.readexactly(size))
        return status, value

    async def _ensure_process(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "helpdesk.email.parser_worker", str(self.memory_bytes), self.target,
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                await asyncio.wait_for(self._answer(self._process), START_LIMIT_SECONDS)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                await self._discard()
                raise ParserUnavailable(
                    f"the mail parser worker did not start: {type(exc).__name__}"
                ) from exc
        return self._process

    async def _discard(self) -> int | None:
        """Kill the worker (it may be stuck or half-broken) so the next message gets a fresh one."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            log.warning("mail parser worker %s stopped", process.pid)
        code = await process.wait()
        if process.stdin is not None:
            process.stdin.close()
        return code
