"""One IMAP session with aioimaplib: search, size, fetch (never setting \\Seen) and mark a set of UIDs.

Every step has a timeout and a dropped connection fails the pending step at once, so the poller
(``imap_polling``) can reconnect with back-off instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import TypeVar

import aioimaplib

log = logging.getLogger(__name__)

_T = TypeVar("_T")

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

    async def fetch(self, uids: Sequence[int], sizes: Mapping[int, int] | None = None) -> dict[int, bytes]:
        """The raw messages of ``uids`` in one UID FETCH, without setting \\Seen (BODY.PEEK); a UID that
        vanished since the search is missing from the answer.

        Large messages may take longer than one step's timeout on a slow link: the limit grows with their
        RFC822.SIZE (``sizes``) when known. aioimaplib's own timer still ends a transfer that stalls.
        """
        if not uids:
            return {}
        known = sizes or {}
        total = sum(known.get(uid, _UNKNOWN_SIZE) for uid in uids)
        response = await self._ok(
            self._require().uid("fetch", _uid_set(uids), "(BODY.PEEK[])"),
            "UID FETCH",
            timeout=self.timeout + total / _SLOWEST_FETCH_RATE,
        )
        return _literals(response.lines, b"BODY[]", set(uids))

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
        found = _literals(response.lines, b"BODY[HEADER]", {uid})
        return found[uid][:limit] if uid in found else None

    async def mark_processed(self, uids: Sequence[int]) -> None:
        """Flag the set \\Seen in one UID STORE, and move it to the processed folder when one is set."""
        if not uids:
            return
        client = self._require()
        numbers = _uid_set(uids)
        await self._ok(client.uid("store", numbers, "+FLAGS", r"(\Seen)"), "UID STORE")
        if not self.processed_folder:
            return
        folder = _quoted(self.processed_folder)
        if client.has_capability("MOVE"):
            await self._ok(client.uid("move", numbers, folder), "UID MOVE")
            return
        # RFC 6851 fallback: COPY, flag \Deleted, expunge (only this set where UIDPLUS allows).
        await self._ok(client.uid("copy", numbers, folder), "UID COPY")
        await self._ok(client.uid("store", numbers, "+FLAGS", r"(\Deleted)"), "UID STORE")
        if client.has_capability("UIDPLUS"):
            await self._ok(client.uid("expunge", numbers), "UID EXPUNGE")
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


def _consume_outcome(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


def _uidvalidity(lines: list[bytes]) -> int | None:
    for line in lines:
        match = _UIDVALIDITY_RE.search(bytes(line))
        if match:
            return int(match.group(1))
    return None


def _uid_set(uids: Sequence[int]) -> str:
    """``1:3,7`` for 1, 2, 3, 7: a batch's command line stays short."""
    ordered = sorted(set(uids))
    runs: list[str] = []
    start = previous = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        runs.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(runs)


def _literals(lines: list[bytes], item: bytes, wanted: set[int]) -> dict[int, bytes]:
    """The ``item`` literals of a FETCH answer by UID. A literal arrives as a bytearray right after the
    line that announces it ("* 3 FETCH (UID 7 BODY[] {N}"); some servers send the UID after it instead."""
    found: dict[int, bytes] = {}
    for index, line in enumerate(lines):
        if not isinstance(line, bytearray) or index == 0 or item not in bytes(lines[index - 1]):
            continue
        uid_match = _FETCH_UID_RE.search(bytes(lines[index - 1]))
        if uid_match is None and index + 1 < len(lines):
            uid_match = _FETCH_UID_RE.search(bytes(lines[index + 1]))
        if uid_match is None and len(wanted) == 1:
            uid = next(iter(wanted))
        elif uid_match is not None:
            uid = int(uid_match.group(1))
        else:
            continue
        if uid in wanted:
            found[uid] = bytes(line)
    return found


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
