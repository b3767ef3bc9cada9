"""Poison mail through a real `helpdesk run` (issue #10, item 3): Subjects of thousands of RFC 2047 encoded
words (125 KB, and the issue's 190 KB that took the service from 72 MB to 1.19 GB) and a message over
HELPDESK_MAIL_MAX_MESSAGE_MB, then an ordinary request. The service stays small, the poison becomes dead
letters with one notice each, and the request is answered.

Larger Subjects (500 KB, 1 MB) are measured by bench/bench_poison_mail.py: the pymap stand-in parses
what it is given on APPEND with the same stdlib parser and takes longer than its 10 s to store them."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from faults.helpers import (
    MAIL_FROM,
    HelpdeskProcess,
    databases,
    record,
    request_mail,
    run_env,
    ticket_count,
    wait_until,
)
from helpdesk.db.models import DeadLetter
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn

KB = 1024
MB = 1024 * 1024


def poison(size: int, n: int) -> bytes:
    word = "=?utf-8?q?=D0=B0b?="
    folded = "\r\n ".join(" ".join([word] * 4) for _ in range(size // (len(word) + 1) // 4))
    return (
        f"From: Poison {n} <poison{n}@ngo.example.org>\r\nTo: {MAIL_FROM}\r\nSubject: {folded}\r\n"
        f"Message-ID: <poison-{n}@ngo.example.org>\r\n\r\nPlease help.\r\n"
    ).encode()


def _children_peak_kb(pid: int) -> int:
    """The largest VmHWM among the process's children (the parser worker)."""
    peak = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                for line in Path(f"/proc/{child}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
    return peak


@pytest.mark.parametrize("database_url", databases("sqlite"), indirect=True)
async def test_poison_mail_leaves_the_service_small_and_the_next_mail_answered(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    imap: ImapStandIn,
    smtp: SmtpStandIn,
    workdir: Path,
) -> None:
    env = run_env(database_url, imap=imap, smtp=smtp, HELPDESK_MAIL_MAX_MESSAGE_MB="1")
    process = HelpdeskProcess(env, workdir, name="poison")
    await process.start()
    try:
        await process.wait_for_log(" selected", timeout=60)
        for n, size in enumerate((125 * KB, 190 * KB), start=1):
            await imap.append(poison(size, n))
        oversized = request_mail(3, tag="big").replace(b"Dear TSCC", b"x" * (2 * MB) + b"\r\nDear TSCC")
        await imap.append(oversized)
        await imap.append(request_mail(4, tag="after"))

        async def answered() -> bool:
            return await ticket_count(sessions) == 1 and len(smtp.messages) >= 4

        done = await wait_until(answered, timeout=120, interval=0.2)
        worker_peak_kb = _children_peak_kb(process.pid)
        service_peak_kb = max(process.peak_kb, process.rss_kb())
    finally:
        await process.terminate()
    async with sessions() as session:
        letters = list(await session.scalars(select(DeadLetter).order_by(DeadLetter.source_uid)))
    recipients = sorted(str(m.message["To"]) for m in smtp.messages)
    figures = record(
        "poison_mail",
        poison_subjects_kb=[125, 190],
        oversized_mb=round(len(oversized) / MB, 1),
        service_peak_mb=round(service_peak_kb / 1024, 1),
        parser_worker_peak_mb=round(worker_peak_kb / 1024, 1),
        dead_letters=len(letters),
        tickets=await ticket_count(sessions),
        mails_sent=len(recipients),
    )
    assert done, (figures, recipients, process.log_text()[-3000:])
    assert service_peak_kb < 300 * 1024, figures
    assert worker_peak_kb < 1024 * 1024, figures
    assert [letter.reason.split("] ")[-1].split(":")[0] for letter in letters] == ["refused"] * 3, [
        letter.reason for letter in letters
    ]
    assert letters[-1].size == len(oversized) and len(letters[-1].raw) < 64 * KB
    # One notice to each poison sender and the oversized one, one receipt for the request.
    assert sorted(recipients) == sorted(
        [f"poison{n}@ngo.example.org" for n in (1, 2)] + ["big3@ngo.example.org", "after4@ngo.example.org"]
    ), recipients
    assert "Traceback" not in process.log_text()
