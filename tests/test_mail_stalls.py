"""Stalled mail peers (issue #10, item 6): an IMAP or SMTP server that accepts the connection and says
nothing, or greets and then goes silent. Every step has a timeout, intake reconnects with back-off and
logs it, and `helpdesk health` / `helpdesk mail poll --once` end with a one-line failure.

The silent servers are real asyncio TCP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator

import pytest

from helpdesk.delivery import DeliveryError
from helpdesk.email.imap_mailbox import ImapConnectionError, ImapMailbox
from helpdesk.email.imap_polling import one_by_one, run_intake
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.messages import OutboundMessage

IMAP_GREETING = b"* OK [CAPABILITY IMAP4rev1] ready\r\n"
SMTP_GREETING = b"220 mail.example.test ESMTP ready\r\n"


class SilentServer:
    """Accepts connections, optionally sends a greeting, then never answers anything."""

    def __init__(self, greeting: bytes | None) -> None:
        self.greeting = greeting
        self.connections = 0
        self.connected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        self._writers.append(writer)
        if self.greeting is not None:
            writer.write(self.greeting)
            await writer.drain()
        while await reader.read(65536):  # read what the client says, answer nothing
            pass


@pytest.fixture(params=["greets then silent", "silent"])
async def silent_imap(request: pytest.FixtureRequest) -> AsyncIterator[SilentServer]:
    async with SilentServer(IMAP_GREETING if request.param == "greets then silent" else None) as server:
        yield server


@pytest.fixture(params=["greets then silent", "silent"])
async def silent_smtp(request: pytest.FixtureRequest) -> AsyncIterator[SilentServer]:
    async with SilentServer(SMTP_GREETING if request.param == "greets then silent" else None) as server:
        yield server


async def test_a_stalled_imap_server_is_a_connection_error_within_the_timeout(
    silent_imap: SilentServer,
) -> None:
    started = time.monotonic()
    with pytest.raises(ImapConnectionError, match=r"127\.0\.0\.1"):
        async with ImapMailbox("127.0.0.1", silent_imap.port, "u", "p", tls=False, timeout=0.5):
            pass
    assert silent_imap.connections == 1
    assert time.monotonic() - started < 5  # was: for ever (the greeting wait had no limit)


async def test_intake_reconnects_with_back_off_and_logs_each_stall(
    silent_imap: SilentServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="helpdesk.email")
    stop = asyncio.Event()

    async def handle(uid: int, raw: bytes) -> bool:
        raise AssertionError("a silent server has no mail")

    intake = asyncio.create_task(
        run_intake(
            lambda: ImapMailbox("127.0.0.1", silent_imap.port, "u", "p", tls=False, timeout=0.3),
            one_by_one(handle),
            interval=60,
            stop=stop,
            min_backoff=0.05,
            max_backoff=0.2,
        )
    )
    try:
        deadline = time.monotonic() + 30
        while silent_imap.connections < 3:
            assert time.monotonic() < deadline, "intake did not reconnect"
            assert not intake.done(), intake
            silent_imap.connected.clear()
            await asyncio.wait_for(silent_imap.connected.wait(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(intake, 10)
    stalls = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(stalls) >= 2, stalls
    assert all(f"127.0.0.1:{silent_imap.port}" in line for line in stalls)


async def test_a_stalled_smtp_server_is_a_temporary_delivery_failure(silent_smtp: SilentServer) -> None:
    sender = SmtpSender(
        "127.0.0.1", silent_smtp.port, tls=False, mail_from="helpdesk@tscc.example", timeout=0.5
    )
    message = OutboundMessage(channel="email", recipient="a@ngo.example.org", text="hello", subject="hi")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        await sender.send(message)
    assert not failure.value.permanent  # retried later by the outbox, never buried
    assert time.monotonic() - started < 5


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "helpdesk.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode(), time.monotonic() - started


@pytest.mark.parametrize(
    "imap_greets", [True, False], ids=["imap greets, smtp silent", "imap silent, smtp greets"]
)
async def test_health_and_poll_once_end_with_one_line_against_stalled_servers(
    database_url: str, workdir: object, imap_greets: bool
) -> None:
    async with (
        SilentServer(IMAP_GREETING if imap_greets else None) as silent_imap,
        SilentServer(None if imap_greets else SMTP_GREETING) as silent_smtp,
    ):
        await _health_and_poll(database_url, silent_imap, silent_smtp)


async def _health_and_poll(database_url: str, silent_imap: SilentServer, silent_smtp: SilentServer) -> None:
    env = {
        **os.environ,
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_IMAP_HOST": "127.0.0.1",
        "HELPDESK_IMAP_PORT": str(silent_imap.port),
        "HELPDESK_IMAP_USER": "helpdesk@tscc.example",
        "HELPDESK_IMAP_PASSWORD": "pw",
        "HELPDESK_IMAP_TLS": "off",
        "HELPDESK_SMTP_HOST": "127.0.0.1",
        "HELPDESK_SMTP_PORT": str(silent_smtp.port),
        "HELPDESK_SMTP_TLS": "off",
        "HELPDESK_MAIL_FROM": "helpdesk@tscc.example",
        "HELPDESK_MAIL_TIMEOUT_SECONDS": "1",
    }
    code, out, err, elapsed = await _cli(env, "health")
    assert code == 1 and elapsed < 15, (out, err, elapsed)
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert lines["database"].startswith("ok")
    assert lines["imap"].startswith("FAIL") and f"127.0.0.1:{silent_imap.port}" in lines["imap"]
    assert lines["smtp"].startswith("FAIL") and f"127.0.0.1:{silent_smtp.port}" in lines["smtp"]
    assert "Traceback" not in err

    code, out, err, elapsed = await _cli(env, "mail", "poll", "--once")
    assert code == 1 and elapsed < 15, (out, err, elapsed)
    [failure] = [line for line in err.splitlines() if line.startswith("helpdesk: mail poll failed")]
    assert f"127.0.0.1:{silent_imap.port}" in failure
    assert "Traceback" not in err
