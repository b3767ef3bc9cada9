"""A few authenticated SMTP connections kept open across sends.

A fresh connection costs a TCP (and often TLS) handshake, EHLO and AUTH: several round trips and most of a
receipt's time. The pool keeps up to ``size`` connections; each carries one transaction at a time (SMTP is
sequential on a connection), so the worker's concurrent sends take different connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiosmtplib

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a connection the server (or a NAT) dropped while it was idle fails with on its next use. 421 is the
# server's "closing the transmission channel" (an idle limit, a restart).
_STALE = (aiosmtplib.SMTPServerDisconnected, ConnectionError)


def _stale(exc: BaseException) -> bool:
    return isinstance(exc, _STALE) or (isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421)


class SmtpPool:
    """Up to ``size`` open connections; one idle longer than ``idle_seconds`` is closed.

    ``connect`` opens and authenticates a new connection. ``use(deliver)`` runs ``deliver`` on a connection;
    when a reused connection turns out to be stale, ``deliver`` runs once more on a new one before its error
    counts. A connection that failed any other way than a refusal is closed, never reused.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[aiosmtplib.SMTP]],
        *,
        size: int = 4,
        idle_seconds: float = 30.0,
    ) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(size)
        self._idle_seconds = idle_seconds
        # Newest last: the most recently used connection is the likeliest still to be open.
        self._idle: list[tuple[aiosmtplib.SMTP, asyncio.TimerHandle]] = []

    async def use(self, deliver: Callable[[aiosmtplib.SMTP], Awaitable[T]]) -> T:
        async with self._slots:
            client = self._take_idle()
            if client is None:
                return await self._run(await self._connect(), deliver)
            try:
                return await self._run(client, deliver)
            except Exception as exc:
                if not _stale(exc):
                    raise
                log.info("idle SMTP connection was stale (%s); sending on a new one", type(exc).__name__)
            return await self._run(await self._connect(), deliver)

    async def _run(self, client: aiosmtplib.SMTP, deliver: Callable[[aiosmtplib.SMTP], Awaitable[T]]) -> T:
        try:
            result = await deliver(client)
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
            # A refusal leaves the connection usable (aiosmtplib sent RSET); a 421 closes it.
            if _stale(exc):
                client.close()
            else:
                self._give_back(client)
            raise
        except BaseException:
            # A timeout or a broken reply leaves the session in an unknown state.
            client.close()
            raise
        self._give_back(client)
        return result

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client, expiry = self._idle.pop()
            expiry.cancel()
            # A connection the server closed while idle is seen here at no cost (the loop read its EOF).
            if client.is_connected:
                return client
            client.close()
        return None

    def _give_back(self, client: aiosmtplib.SMTP) -> None:
        if not client.is_connected:
            return
        expiry = asyncio.get_running_loop().call_later(self._idle_seconds, self._expire, client)
        self._idle.append((client, expiry))

    def _expire(self, client: aiosmtplib.SMTP) -> None:
        self._idle = [(c, handle) for c, handle in self._idle if c is not client]
        client.close()

    async def close(self) -> None:
        """Say QUIT on every idle connection (shutdown)."""
        idle, self._idle = self._idle, []
        for client, expiry in idle:
            expiry.cancel()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
