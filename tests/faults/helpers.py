"""Shared by the fault-injection and load scenarios: `helpdesk run` as a real process (started, killed,
measured), the environment that points it at the stand-ins, generated mail, counts from the database,
a private PostgreSQL that can be restarted, and the figures each scenario records for the report.

Counts scale with environment variables (``HELPDESK_FAULT_<NAME>``), so `bench/fault_report.py` runs the
same scenarios with larger numbers than CI does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db.models import Message, OutboxItem, Ticket
from standins.environment import standin_environment
from standins.imap_server import ImapStandIn
from standins.ports import free_port
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

MAIL_FROM = "helpdesk@tscc.example"
# `helpdesk run` logs this once its SIGTERM handler is installed (helpdesk/commands/run.py).
READY = "help desk running"
# Start-up of `helpdesk run` (imports, migrations) on a loaded 2-core machine: slow, but bounded.
STARTUP_SECONDS = 120.0

# Every scenario's figures, printed at the end of the run (conftest) and written to
# $HELPDESK_FAULT_FIGURES when set (bench/fault_report.py reads them from there).
FIGURES: list[dict[str, Any]] = []


def scale(name: str, default: int) -> int:
    """A count for this run: ``HELPDESK_FAULT_<NAME>`` when set, else the CI default."""
    return int(os.environ.get(f"HELPDESK_FAULT_{name.upper()}", default))


def databases(ci_default: str) -> list[str]:
    """Backends for a slow scenario: one in CI (time budget), both with HELPDESK_FAULT_BOTH_DATABASES=1."""
    if os.environ.get("HELPDESK_FAULT_BOTH_DATABASES") == "1":
        return ["sqlite", "postgresql"]
    return [ci_default]


def record(scenario: str, **figures: Any) -> dict[str, Any]:
    entry = {"scenario": scenario, **figures}
    FIGURES.append(entry)
    path = os.environ.get("HELPDESK_FAULT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return entry


def percentile(values: Iterable[float], share: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return round(ordered[index], 3)


def duplicates(keys: Iterable[object]) -> int:
    """How many deliveries repeated one already made (two of the same key count as one duplicate)."""
    return sum(n - 1 for n in Counter(keys).values() if n > 1)


# --- the environment of `helpdesk run` --------------------------------------------------------------------


def run_env(
    database_url: str,
    *,
    smtp: SmtpStandIn | None = None,
    imap: ImapStandIn | None = None,
    bot_api: TelegramApiStandIn | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {
        **os.environ,
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_MAIL_FROM": MAIL_FROM,
        # No HELPDESK_STAFF_EMAILS: each new ticket would also mail every staff address a notification, and
        # the figures here count requester deliveries (no fault scenario mails as staff).
        "HELPDESK_REPORT_DAY": "0",
        # Fast enough for tests: a killed worker's items come back after 2 s, retries start at 0.5 s.
        "HELPDESK_DELIVERY_LEASE_SECONDS": "2",
        "HELPDESK_DELIVERY_RETRY_BASE_SECONDS": "0.5",
        "HELPDESK_MAIL_ACK_LIMIT_PER_HOUR": "1000",
    }
    env |= standin_environment(smtp=smtp, imap=imap, bot_api=bot_api)
    if imap is not None:
        env["HELPDESK_IMAP_POLL_INTERVAL"] = "5"
    env |= extra
    return env


# --- `helpdesk run` as a process --------------------------------------------------------------------------


@dataclass
class HelpdeskProcess:
    """One `helpdesk run`, its log in a file (a pipe nobody reads would block it), its memory sampled."""

    env: Mapping[str, str]
    workdir: Path
    name: str = "run"
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    rss_samples_kb: list[int] = field(default_factory=list)
    peak_kb: int = 0  # VmHWM: the kernel's own high-water mark of resident memory
    _sampler: asyncio.Task[None] | None = None
    started_at: float = 0.0

    async def start(self) -> HelpdeskProcess:
        self.log_path = self.workdir / f"{self.name}.log"
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "helpdesk.cli", "run",
                env=dict(self.env), cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        finally:
            log.close()
        self.started_at = time.monotonic()
        self._sampler = asyncio.create_task(self._sample())
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    async def wait_for_log(self, needle: str, timeout: float = STARTUP_SECONDS) -> float:  # noqa: ASYNC109
        """Seconds from start until ``needle`` is in the log; AssertionError if the process ends first."""
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if self.process is not None and self.process.returncode is not None:
                tail = self.log_text()[-3000:]
                raise AssertionError(f"{self.name} exited before logging {needle!r}:\n{tail}")
            if time.monotonic() > deadline:
                tail = self.log_text()[-3000:]
                raise AssertionError(f"{self.name} did not log {needle!r} in {timeout}s:\n{tail}")
            await asyncio.sleep(0.02)
        return time.monotonic() - self.started_at

    def rss_kb(self) -> int:
        return _status_kb(self.pid, "VmRSS")

    async def _sample(self) -> None:
        while self.process is not None and self.process.returncode is None:
            with contextlib.suppress(OSError, ValueError):
                self.rss_samples_kb.append(_status_kb(self.pid, "VmRSS"))
                self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmHWM"))
            await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, the outbox lease is left as it was."""
        await self._end(signal.SIGKILL)

    async def terminate(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """SIGTERM, the graceful stop, sent once the process said it is running: before its handler is
        installed, SIGTERM ends Python outright (exit -15, nothing logged), which is what a fast test
        on a slow machine used to see when it had nothing left to wait for right after the start."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(AssertionError):  # ended or stuck before READY: stop it anyway
                await self.wait_for_log(READY)
        return await self._end(signal.SIGTERM, timeout)

    async def _end(self, sig: int, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        if self.process is None:
            return 0
        if self.process.returncode is None:
            with contextlib.suppress(OSError, ValueError):
                self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmHWM"))
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        return self.process.returncode or 0


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise ValueError(f"{key} not in /proc/{pid}/status")


@contextlib.asynccontextmanager
async def running(*processes: HelpdeskProcess) -> Any:
    """Start the processes; whatever happens, end them (SIGKILL after a 10 s SIGTERM)."""
    try:
        for process in processes:
            await process.start()
        yield processes
    finally:
        for process in processes:
            await process.terminate(timeout=10)


# --- mail --------------------------------------------------------------------------------------------------


def request_mail(n: int, *, tag: str = "m", sender: str | None = None) -> bytes:
    """A plain request from a stakeholder, with a Message-ID of its own."""
    message = EmailMessage()
    message["From"] = f"Sender {n} <{sender or f'{tag}{n}@ngo.example.org'}>"
    message["To"] = MAIL_FROM
    message["Subject"] = f"Request {tag}-{n}: protected areas data"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(idstring=f"{tag}{n}", domain="ngo.example.org")
    message.set_content(
        f"Dear TSCC, request {tag}-{n}: we need guidance on the METT questionnaire for protected areas "
        "under Target 3 and data for the national report.\n"
    )
    return message.as_bytes()


# --- counts from the database ----------------------------------------------------------------------------


async def count(sessions: async_sessionmaker[AsyncSession], model: type, *where: object) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def inbound_ids(sessions: async_sessionmaker[AsyncSession], channel: str) -> list[str]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(Message.channel_message_id).where(
                    Message.kind == "inbound", Message.channel == channel
                )
            )
        )


async def outbox_state(sessions: async_sessionmaker[AsyncSession]) -> Counter[str]:
    async with sessions() as session:
        rows = await session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status))
        return Counter({status: int(n) for status, n in rows})


async def ticket_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    return await count(sessions, Ticket)


async def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:  # noqa: ASYNC109
    """Await ``predicate()`` (a coroutine function returning bool) until true or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


# --- a private PostgreSQL that a test may restart -----------------------------------------------------------


class PrivatePostgres:
    """initdb into a directory under /tmp (mode 755, so the postgres user can reach it), run as that user.

    Never the machine's shared server: its own port, its own data directory, removed at the end.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-faults-pg-", dir="/tmp"))
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/helpdesk"

    def _as_postgres(self, *argv: str) -> list[str]:
        if os.geteuid() != 0:
            return list(argv)
        import pwd

        user = pwd.getpwnam("postgres")
        return [
            "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
            "--", *argv,
        ]  # fmt: skip

    async def setup(self) -> None:
        os.chmod(self.dir, 0o755)
        data = self.dir / "data"
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        initdb = await asyncio.create_subprocess_exec(
            *self._as_postgres(
                _pg_binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync",
            ),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await initdb.communicate()
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {err.decode(errors='replace')}")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            )
        await self.start()
        connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            await connection.execute("CREATE DATABASE helpdesk")
        finally:
            await connection.close()

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self._as_postgres(_pg_binary("postgres"), "-D", str(self.dir / "data")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=(self.dir / "server.log").open("ab"),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = await asyncpg.connect(
                    f"postgresql://postgres@127.0.0.1:{self.port}/postgres", timeout=2
                )
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if time.monotonic() > deadline or (self.process.returncode is not None):
                    tail = self.server_log()[-2000:]
                    raise RuntimeError(f"private PostgreSQL did not start: {tail}") from None
                await asyncio.sleep(0.05)
            else:
                await connection.close()
                return

    def server_log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT is PostgreSQL's fast shutdown: sessions are cut, as in a restart under load."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def cleanup(self) -> None:
        await self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise RuntimeError(f"PostgreSQL's {name} is not installed")
