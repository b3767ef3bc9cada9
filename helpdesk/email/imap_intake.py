"""IMAP intake with aioimaplib: fetch waiting mail, hand each message to the desk, mark it only after.

The desk's ``handle(uid, raw)`` returns True once the ticket (or follow-up, or dead letter) is committed.
Only then is the message flagged \\Seen (or moved to the processed folder), so a crash between fetch and
commit leaves it waiting for the next poll; and one message whose handling fails is logged and left
waiting while the rest go on.

A ``Checkpoint`` keeps UIDVALIDITY and the highest committed UID per mailbox in the database: mail that
a person marked read in a mail client is still picked up (UIDs above the checkpoint are fetched whatever
their flags), and a changed UIDVALIDITY starts the mailbox over (Message-ID de-duplication keeps that safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, TypeVar

import aioimaplib

log = logging.getLogger(__name__)

Handler = Callable[[int, bytes], Awaitable[bool]]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Oversized:
    """Mail over ``max_bytes`` (its RFC822.SIZE) is never fetched whole: ``handle(uid, header, size)``
    gets its header block, fetched up to ``header_bytes``, and returns True once it is safe to mark."""

    max_bytes: int
    header_bytes: int
    handle: Callable[[int, bytes, int], Awaitable[bool]]


_UIDVALIDITY_RE = re.compile(rb"UIDVALIDITY (\d+)")
_DIGITS_RE = re.compile(rb"[0-9 ]+")
_FETCH_UID_RE = re.compile(rb"UID (\d+)")
_FETCH_SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")
# A FETCH may take its step timeout plus the time to move the message at this rate (bytes per second);
# without a known size, as if it were 50 MB (the default HELPDESK_MAIL_MAX_MESSAGE_MB).
_SLOWEST_FETCH_RATE = 64 * 1024
_UNKNOWN_SIZE = 50 * 1024 * 1024
# UIDs per size query: keeps each command line short (servers cap it at some 8 KB).
_SIZE_BATCH = 500


class Checkpoint(Protocol):
    """Where the UID checkpoint lives (the database, in the help desk)."""

    async def load(self, mailbox: str, uidvalidity: int) -> int:
        """The highest UID committed under this UIDVALIDITY; 0 when none (or the UIDVALIDITY changed)."""
        ...

    async def save(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        """Record ``uid`` as committed (the stored value only ever grows under one UIDVALIDITY)."""
        ...


class ImapError(Exception):
    """Base of intake errors."""


class ImapConnectionError(ImapError):
    """The connection failed or broke (refused, timeout, dropped, protocol abort): reconnect and retry."""


class ImapAuthError(ImapError):
    """The server refused the login: a configuration problem, retried slowly."""


class ImapCommandError(ImapError):
    """The server answered NO or BAD to a command."""


class ImapMailbox:
    """One authenticated IMAP session with ``mailbox`` selected.

    ``tls=True`` is implicit TLS (IMAPS, port 993): aioimaplib 2.0 has no STARTTLS. Use as
    ``async with ImapMailbox(...) as mailbox:``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        tls: bool,
        mailbox: str = "INBOX",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        processed_folder: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.tls = tls
        self.mailbox = mailbox
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = asyncio.Event()
        self.uidvalidity: int | None = None
        self.processed_folder = processed_folder

    @property
    def key(self) -> str:
        """Names this mailbox in the checkpoint table."""
        return f"{self.user}@{self.host}:{self.port}/{self.mailbox}"

    def __repr__(self) -> str:
        return (
            f"ImapMailbox(host={self.host!r}, port={self.port}, user={self.user!r}, "
            f"tls={self.tls}, mailbox={self.mailbox!r})"
        )

    async def __aenter__(self) -> ImapMailbox:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def supports_idle(self) -> bool:
        return self._client is not None and self._client.has_capability("IDLE")

    async def connect(self) -> None:
        if self.tls:
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                self.host, self.port, timeout=self.timeout, ssl_context=self._ssl_context
            )
        else:
            client = aioimaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        # aioimaplib ignores a dropped connection and lets the pending command run into its timeout;
        # this callback lets _guard fail at once instead. (IMAP4_SSL takes no conn_lost_cb argument.)
        self._lost = asyncio.Event()
        lost = self._lost
        client.protocol.conn_lost_cb = lambda exc: lost.set()
        self._client = client
        try:
            await self._guard(client.wait_hello_from_server(), "connect")
            login = await self._guard(client.login(self.user, self._password), "LOGIN")
            if login.result != "OK":
                raise ImapAuthError(f"IMAP login refused for {self.user!r} at {self.host}:{self.port}")
            selected = await self._guard(client.select(self.mailbox), "SELECT")
            if selected.result != "OK":
                raise ImapCommandError(f"cannot select {self.mailbox!r}: {_text(selected.lines)}")
        except BaseException:
            await self.close()
            raise
        self.uidvalidity = _uidvalidity(selected.lines)
        if self.processed_folder:
            # NO when it exists already: fine. A real failure shows when the first MOVE fails.
            with contextlib.suppress(ImapCommandError):
                await self._ok(client.create(_quoted(self.processed_folder)), "CREATE")
        log.info("IMAP %s@%s:%s %s selected", self.user, self.host, self.port, self.mailbox)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
            # On a dead connection LOGOUT would only wait for its timeout.
            if not self._lost.is_set() and client.get_state() in {"AUTH", "SELECTED"}:
                await asyncio.wait_for(client.logout(), min(self.timeout, 5))
        # aioimaplib leaves the transport open after a failed or skipped LOGOUT.
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()

    async def unseen_uids(self) -> list[int]:
        # No CHARSET argument: the criterion is ASCII, and some servers answer BAD to "CHARSET utf-8".
        response = await self._ok(self._require().uid_search("UNSEEN", charset=None), "UID SEARCH")
        uids: list[int] = []
        for line in response.lines:
            data = bytes(line).strip()
            if _DIGITS_RE.fullmatch(data):
                uids.extend(int(token) for token in data.split())
        return sorted(set(uids))

    async def waiting_uids(self, after_uid: int = 0) -> list[int]:
        """UIDs to look at: everything when processed mail is moved away (what is left is waiting);
        otherwise unseen mail plus every UID above ``after_uid`` (the checkpoint), read or not."""
        client = self._require()
        if self.processed_folder:
            response = await self._ok(client.uid_search("ALL", charset=None), "UID SEARCH")
            return _search_result(response.lines)
        uids = set(await self.unseen_uids())
        if after_uid > 0:
            response = await self._ok(client.uid_search(f"UID {after_uid + 1}:*", charset=None), "UID SEARCH")
            # "n:*" always includes the highest UID, even below n: filter.
            uids.update(uid for uid in _search_result(response.lines) if uid > after_uid)
        return sorted(uids)

    async def fetch(self, uid: int, size: int | None = None) -> bytes | None:
        """The raw message, without setting \\Seen (BODY.PEEK); None if it vanished since the search.

        A large message may take longer than one step's timeout on a slow link: the limit grows with
        ``size`` (its RFC822.SIZE when known). aioimaplib's own timer still ends a transfer that stalls.
        """
        budget = self.timeout + (size if size is not None else _UNKNOWN_SIZE) / _SLOWEST_FETCH_RATE
        response = await self._ok(
            self._require().uid("fetch", str(uid), "(BODY.PEEK[])"), "UID FETCH", timeout=budget
        )
        lines = response.lines
        for index, line in enumerate(lines):
            # The literal arrives as a bytearray right after the line that announces it ("… BODY[] {N}").
            if isinstance(line, bytearray) and index > 0 and b"BODY[]" in bytes(lines[index - 1]):
                uid_match = _FETCH_UID_RE.search(bytes(lines[index - 1]))
                trailer = bytes(lines[index + 1]) if index + 1 < len(lines) else b""
                uid_match = uid_match or _FETCH_UID_RE.search(trailer)
                if uid_match is None or int(uid_match.group(1)) == uid:
                    return bytes(line)
        return None

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE per UID, asked before fetching so that oversized mail is never pulled in whole."""
        found: dict[int, int] = {}
        for start in range(0, len(uids), _SIZE_BATCH):
            batch = ",".join(str(uid) for uid in uids[start : start + _SIZE_BATCH])
            response = await self._ok(self._require().uid("fetch", batch, "(RFC822.SIZE)"), "UID FETCH SIZE")
            for line in response.lines:
                data = bytes(line)
                uid, size = _FETCH_UID_RE.search(data), _FETCH_SIZE_RE.search(data)
                if uid is not None and size is not None:
                    found[int(uid.group(1))] = int(size.group(1))
        return found

    async def fetch_header(self, uid: int, limit: int) -> bytes | None:
        """The header block (at most ``limit`` bytes), without setting \\Seen; None if it vanished."""
        response = await self._ok(
            self._require().uid("fetch", str(uid), f"(BODY.PEEK[HEADER]<0.{limit}>)"), "UID FETCH HEADER"
        )
        for index, line in enumerate(response.lines):
            if (
                isinstance(line, bytearray)
                and index > 0
                and b"BODY[HEADER]" in bytes(response.lines[index - 1])
            ):
                return bytes(line)[:limit]
        return None

    async def fetch_unseen(self) -> AsyncIterator[tuple[int, bytes]]:
        """Yield ``(uid, raw)`` for each unseen message, fetching one at a time to bound memory."""
        for uid in await self.unseen_uids():
            raw = await self.fetch(uid)
            if raw is None:
                log.info("IMAP UID %s vanished before it could be fetched", uid)
                continue
            yield uid, raw

    async def mark_seen(self, uid: int) -> None:
        await self._ok(self._require().uid("store", str(uid), "+FLAGS", r"(\Seen)"), "UID STORE")

    async def mark_processed(self, uid: int) -> None:
        """Flag \\Seen, and move to the processed folder when one is configured."""
        await self.mark_seen(uid)
        if not self.processed_folder:
            return
        client = self._require()
        folder = _quoted(self.processed_folder)
        if client.has_capability("MOVE"):
            await self._ok(client.uid("move", str(uid), folder), "UID MOVE")
            return
        # RFC 6851 fallback: COPY, flag \Deleted, expunge (only this UID where UIDPLUS allows).
        await self._ok(client.uid("copy", str(uid), folder), "UID COPY")
        await self._ok(client.uid("store", str(uid), "+FLAGS", r"(\Deleted)"), "UID STORE")
        if client.has_capability("UIDPLUS"):
            await self._ok(client.uid("expunge", str(uid)), "UID EXPUNGE")
        else:
            await self._ok(client.expunge(), "EXPUNGE")

    async def wait_for_news(self, timeout: float) -> bool:  # noqa: ASYNC109 - IDLE's own timer, not a wrapper
        """Wait up to ``timeout`` s for the server to announce a change (IDLE); False on timeout.

        Without IDLE support this just sleeps. Cancelling is safe: IDLE is ended with DONE on the way out.
        """
        client = self._require()
        if not client.has_capability("IDLE"):
            await asyncio.sleep(timeout)
            return False
        # Updates that arrived with the end of an earlier IDLE sit in aioimaplib's push queue; the caller
        # has polled since, so they are stale and would end this IDLE at once.
        queue = client.protocol.idle_queue
        while not queue.empty():
            queue.get_nowait()
        # A refused IDLE surfaces as ImapConnectionError (aioimaplib raises Abort): reconnecting is right.
        idle = await self._guard(client.idle_start(timeout=timeout), "IDLE")
        pushed = False
        try:
            while True:
                # A server that goes away mid-IDLE (restart, dropped link) must end the wait at once, not
                # after the IDLE timeout: the connection-lost callback races the push.
                push = asyncio.ensure_future(client.wait_server_push(timeout=timeout + 1))
                lost = asyncio.ensure_future(self._lost.wait())
                try:
                    await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    lost.cancel()
                if not push.done():
                    push.cancel()
                    push.add_done_callback(_consume_outcome)
                    raise ImapConnectionError(f"IMAP IDLE at {self.host}:{self.port}: connection lost")
                try:
                    lines = push.result()
                except TimeoutError:
                    break
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if any(b"EXISTS" in bytes(line) or b"RECENT" in bytes(line) for line in lines):
                    pushed = True
                    break
        finally:
            if client.has_pending_idle():
                client.idle_done()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(idle), min(self.timeout, 5))
        return pushed

    def _require(self) -> aioimaplib.IMAP4:
        if self._client is None:
            raise ImapConnectionError("not connected")
        return self._client

    async def _ok(
        self,
        call: Awaitable[aioimaplib.Response],
        what: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> aioimaplib.Response:
        response = await self._guard(call, what, timeout=timeout)
        if response.result != "OK":
            raise ImapCommandError(f"{what} failed: {response.result} {_text(response.lines)}")
        return response

    async def _guard(self, call: Awaitable[_T], what: str, *, timeout: float | None = None) -> _T:  # noqa: ASYNC109
        """Await one IMAP step, at most ``timeout`` (default ``self.timeout``) seconds.

        A stall (a server that greets and then says nothing, or never greets) is a connection error like
        a drop: the caller reconnects with back-off. aioimaplib's greeting wait has no timeout of its own.
        """
        task = asyncio.ensure_future(call)
        if not task.done():
            lost = asyncio.ensure_future(self._lost.wait())
            try:
                await asyncio.wait(
                    {task, lost},
                    timeout=self.timeout if timeout is None else timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                lost.cancel()
            if not task.done():
                # Not awaited: aioimaplib's command wait can swallow the cancellation until its own timeout.
                task.cancel()
                task.add_done_callback(_consume_outcome)
                if self._lost.is_set():
                    raise ImapConnectionError(f"IMAP {what} at {self.host}:{self.port}: connection lost")
                waited = self.timeout if timeout is None else timeout
                raise ImapConnectionError(
                    f"IMAP {what} at {self.host}:{self.port}: no answer within {waited:g} s"
                )
        try:
            return task.result()
        except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
            reason = str(exc) or type(exc).__name__
            raise ImapConnectionError(f"IMAP {what} at {self.host}:{self.port} failed: {reason}") from exc


@dataclass(slots=True)
class PollResult:
    """What one poll did. ``committed`` messages were marked seen; the others stay unseen for a retry."""

    fetched: int = 0
    committed: int = 0
    declined: int = 0
    failed: int = 0
    failed_uids: list[int] = field(default_factory=list)


CHECKPOINT_EVERY = 50


async def poll_once(
    mailbox: ImapMailbox,
    handle: Handler,
    *,
    checkpoint: Checkpoint | None = None,
    oversized: Oversized | None = None,
) -> PollResult:
    """Hand every waiting message to ``handle``; mark (or move) only those it reports as committed.

    An exception from ``handle`` is logged and counted, and the message stays waiting; IMAP errors
    (connection lost, NO/BAD) propagate so the caller can reconnect.
    """
    result = PollResult()
    after = saved = 0
    uidvalidity = mailbox.uidvalidity
    if checkpoint is not None and uidvalidity is not None:
        after = saved = await checkpoint.load(mailbox.key, uidvalidity)
    highest = after

    async def save() -> None:
        nonlocal saved
        if checkpoint is not None and uidvalidity is not None and highest > saved:
            await checkpoint.save(mailbox.key, uidvalidity, highest)
            saved = highest

    try:
        waiting = await mailbox.waiting_uids(after)
        sizes = await mailbox.sizes(waiting) if oversized is not None and waiting else {}
        for uid in waiting:
            if oversized is not None and sizes.get(uid, 0) > oversized.max_bytes:
                raw = await mailbox.fetch_header(uid, oversized.header_bytes)
                step = functools.partial(oversized.handle, size=sizes[uid])
            else:
                raw = await mailbox.fetch(uid, sizes.get(uid))
                step = handle
            if raw is None:
                log.info("IMAP UID %s vanished before it could be fetched", uid)
                continue
            result.fetched += 1
            try:
                committed = await step(uid, raw)
            except Exception:
                result.failed += 1
                result.failed_uids.append(uid)
                log.exception("handling IMAP UID %s failed; left unseen for the next poll", uid)
                continue
            if committed:
                highest = max(highest, uid)
                await mailbox.mark_processed(uid)
                result.committed += 1
                # The checkpoint only saves re-reading: a lagging one re-fetches a few committed messages,
                # which Message-ID de-duplication turns away. Saving it every message cost a transaction each.
                if result.committed % CHECKPOINT_EVERY == 0:
                    await save()
            else:
                result.declined += 1
    finally:
        with contextlib.suppress(Exception):
            await save()
    return result


async def run_intake(
    open_mailbox: Callable[[], ImapMailbox],
    handle: Handler,
    *,
    interval: float,
    stop: asyncio.Event,
    use_idle: bool = True,
    min_backoff: float = 1.0,
    max_backoff: float = 300.0,
    on_poll: Callable[[PollResult], None] | None = None,
    checkpoint: Checkpoint | None = None,
    oversized: Oversized | None = None,
) -> None:
    """Poll until ``stop`` is set, reconnecting with exponential back-off after errors.

    ``open_mailbox`` makes a fresh, unconnected ``ImapMailbox`` for each (re)connection. Between polls it
    waits ``interval`` seconds, or less when the server supports IDLE and announces new mail.
    """
    backoff = min_backoff
    while not stop.is_set():
        try:
            async with open_mailbox() as mailbox:
                while not stop.is_set():
                    result = await poll_once(mailbox, handle, checkpoint=checkpoint, oversized=oversized)
                    backoff = min_backoff  # a full poll worked: the connection is healthy
                    if on_poll is not None:
                        on_poll(result)
                    if result.fetched:
                        log.info(
                            "IMAP poll: %d fetched, %d committed, %d declined, %d failed",
                            result.fetched,
                            result.committed,
                            result.declined,
                            result.failed,
                        )
                    if use_idle and mailbox.supports_idle:
                        await _until_stopped(mailbox.wait_for_news(interval), stop)
                    else:
                        await _wait(stop, interval)
        except ImapAuthError as exc:
            # Hammering a server with a wrong password gets the account locked: wait the longest back-off.
            log.error("%s; retrying in %.0f s", exc, max_backoff)
            await _wait(stop, max_backoff)
        except ImapError as exc:
            delay = backoff * random.uniform(0.8, 1.2)  # jitter: several desks must not reconnect in step
            log.warning("%s; reconnecting in %.1f s", exc, delay)
            await _wait(stop, delay)
            backoff = min(backoff * 2, max_backoff)
        except Exception:
            # E.g. the checkpoint's database restarting: intake must not end for good; try again later.
            delay = backoff * random.uniform(0.8, 1.2)
            log.exception("email intake failed; starting over in %.1f s", delay)
            await _wait(stop, delay)
            backoff = min(backoff * 2, max_backoff)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _until_stopped(work: Awaitable[object], stop: asyncio.Event) -> None:
    """Run ``work`` but give up on it as soon as ``stop`` is set."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def _consume_outcome(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


def _uidvalidity(lines: list[bytes]) -> int | None:
    for line in lines:
        match = _UIDVALIDITY_RE.search(bytes(line))
        if match:
            return int(match.group(1))
    return None


def _search_result(lines: list[bytes]) -> list[int]:
    uids: list[int] = []
    for line in lines:
        data = bytes(line).strip()
        if _DIGITS_RE.fullmatch(data):
            uids.extend(int(token) for token in data.split())
    return sorted(set(uids))


def _quoted(name: str) -> str:
    """A mailbox name as an IMAP quoted string (ASCII names; modified UTF-7 is not needed for ours)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(lines: list[bytes]) -> str:
    return " ".join(
        bytes(line).decode("utf-8", "replace") for line in lines if not isinstance(line, bytearray)
    )
