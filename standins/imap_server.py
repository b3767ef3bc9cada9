"""A pymap IMAP server on loopback, for the demo and the tests.

    async with ImapStandIn(user="helpdesk@tscc.example", password="pw") as imap:
        uid = await imap.append(raw_bytes)
        ... point the intake at imap.host:imap.port with imap.user / imap.password (tls=False) ...
        assert "\\Seen" in await imap.flags(uid)

pymap runs as a subprocess (its in-memory "dict" backend). Without ``--demo-data`` the dict backend still
creates the "demo user" from ``--demo-user``/``--demo-password``, with an empty INBOX: that is our account.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections import deque
from types import TracebackType

import aioimaplib

from standins.ports import start_on_a_port

# pymap 0.36 has no __main__ module, so `python -m pymap` does not work; call its console entry point.
_PYMAP_BOOT = "import sys; sys.argv[0] = 'pymap'; from pymap.main import main; main()"
_APPENDUID_RE = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")
_UID_RE = re.compile(rb"UID (\d+)")


class ImapStandInError(RuntimeError):
    pass


class ImapStandIn:
    """pymap on 127.0.0.1 with one account and an empty INBOX; no TLS."""

    def __init__(
        self,
        *,
        user: str = "helpdesk@tscc.example",
        password: str = "helpdesk-imap-pw",
        host: str = "127.0.0.1",
        startup_timeout: float = 20.0,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._@+-]+", user):
            # aioimaplib sends the login name unquoted, so keep it to IMAP atom characters.
            raise ValueError(f"user must be an IMAP atom: {user!r}")
        self.host = host
        self.port = 0
        self.user = user
        self.password = password
        self.startup_timeout = startup_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_tail: deque[str] = deque(maxlen=40)
        self._stderr_task: asyncio.Task[None] | None = None
        self._client: aioimaplib.IMAP4 | None = None
        self._client_lock = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self, *, port: int | None = None) -> None:
        """Start pymap (on ``port`` when given, so a test can simulate a server restart on the same port)."""
        if self._process is not None:
            raise ImapStandInError("already running")
        self.port = await start_on_a_port(self.host, port, self._start_on)

    async def _start_on(self, port: int) -> None:
        self.port = port
        self._stderr_tail.clear()  # what an earlier attempt said is not this one's reason
        # The password travels on the command line: acceptable for a throw-away loopback account only.
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PYMAP_BOOT,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--no-tls",
            "dict",
            "--demo-user",
            self.user,
            "--demo-password",
            self.password,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._process))
        try:
            await self._wait_for_banner()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        async with self._client_lock:
            await self._drop_client()
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._stderr_task is not None:
            task, self._stderr_task = self._stderr_task, None
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 1)

    async def restart(self) -> None:
        """Stop and start again on the same port: clients see a dropped connection and an empty mailbox."""
        port = self.port
        await self.stop()
        await self.start(port=port)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def __aenter__(self) -> ImapStandIn:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- mailbox helpers (through a real IMAP client) -----------------------------------------------------

    async def append(self, raw: bytes, *, flags: str | None = None, mailbox: str = "INBOX") -> int:
        """APPEND a message as if it had been delivered; returns its UID."""
        response = await self._command(lambda c: c.append(raw, mailbox=mailbox, flags=flags))
        for line in response.lines:
            match = _APPENDUID_RE.search(bytes(line))
            if match:
                return int(match.group(1))
        raise ImapStandInError(f"APPEND gave no APPENDUID: {response.lines!r}")

    async def flags(self, uid: int) -> frozenset[str]:
        """The message's flags (e.g. ``\\Seen``); KeyError when no message has this UID."""
        response = await self._command(lambda c: c.uid("fetch", str(uid), "(FLAGS)"))
        for line in response.lines:
            data = bytes(line)
            uid_match = _UID_RE.search(data)
            flags_match = _FLAGS_RE.search(data)
            if uid_match and flags_match and int(uid_match.group(1)) == uid:
                return frozenset(flag.decode() for flag in flags_match.group(1).split())
        raise KeyError(uid)

    async def unseen_uids(self) -> list[int]:
        response = await self._command(lambda c: c.uid_search("UNSEEN", charset=None))
        return _search_uids(response.lines)

    async def all_uids(self) -> list[int]:
        response = await self._command(lambda c: c.uid_search("ALL", charset=None))
        return _search_uids(response.lines)

    # --- internals ----------------------------------------------------------------------------------------

    async def _command(self, call):  # type: ignore[no-untyped-def]
        async with self._client_lock:
            client = await self._connected_client()
            # SELECT again before each helper call: it also makes pymap report other sessions' flag changes.
            await client.select("INBOX")
            response = await call(client)
        if response.result != "OK":
            raise ImapStandInError(f"IMAP command failed: {response.result} {response.lines!r}")
        return response

    async def _connected_client(self) -> aioimaplib.IMAP4:
        if self._client is not None and self._client.get_state() in {"AUTH", "SELECTED"}:
            return self._client
        await self._drop_client()
        client = aioimaplib.IMAP4(self.host, self.port, timeout=10)
        await client.wait_hello_from_server()
        response = await client.login(self.user, self.password)
        if response.result != "OK":
            raise ImapStandInError(f"stand-in login failed: {response.lines!r}")
        self._client = client
        return client

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), 2)

    async def _wait_for_banner(self) -> None:
        # pymap accepts TCP only once it serves, but wait for the greeting anyway: that is the real signal.
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.returncode is not None:
                if self._stderr_task is not None:
                    # Its last words (a port taken meanwhile) may still be in the pipe: read them first.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(self._stderr_task), 2)
                raise ImapStandInError(f"pymap exited during start-up: {self._stderr_text()}")
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            try:
                banner = await asyncio.wait_for(reader.readline(), 2)
            except TimeoutError:
                banner = b""
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if banner.startswith(b"* OK"):
                return
            await asyncio.sleep(0.05)
        raise ImapStandInError(
            f"pymap gave no '* OK' banner within {self.startup_timeout}s: {self._stderr_text()}"
        )

    async def _drain_stderr(self, process: asyncio.subprocess.Process) -> None:
        # Keep reading so a chatty pymap never blocks on a full pipe; keep the tail for error messages.
        assert process.stderr is not None
        async for line in process.stderr:
            self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    def _stderr_text(self) -> str:
        return " | ".join(self._stderr_tail) or "(no output)"


def _search_uids(lines: list[bytes]) -> list[int]:
    # aioimaplib strips "* SEARCH"; untagged EXISTS/FETCH lines may be mixed in, so keep digit-only lines.
    uids: list[int] = []
    for line in lines:
        data = bytes(line).strip()
        if re.fullmatch(rb"[0-9 ]+", data):
            uids.extend(int(token) for token in data.split())
    return uids
