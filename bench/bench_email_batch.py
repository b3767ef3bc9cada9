"""Email intake with its receipts against a bare aioimaplib + aiosmtplib loop (issue #12). Not a test.

    .venv/bin/python bench/bench_email_batch.py [--messages 400] [--rounds 3] [--databases sqlite,postgresql]
                                                [--memory-messages 10000]

Speed, per database: a fresh database, then rounds of (bare, ours) side by side on the same pymap and
aiosmtpd stand-ins. "Ours" is what `helpdesk mail poll --once` does over N waiting mails (fetch, parse,
receive, mark seen, send every receipt), timed inside a fresh process after its start-up (imports,
settings, the database's migration check), divided by N; subtracting a separately timed start-up was too
noisy on a shared machine. "Bare" is one aioimaplib session and one aiosmtplib connection doing
the same I/O per mail: UID FETCH BODY.PEEK[], UID STORE +FLAGS (\\Seen), send one reply. JSON lines out,
medians of the rounds; the ratio is ours / bare per mail; ours' statements and ORM flushes per mail
(``intake_statements_per_mail``, ``intake_flushes_per_mail``, ``receipt_statements_per_mail``).

Memory (SQLite): a real `helpdesk run` with M mails waiting; its RSS when 1k, 5k and M of them are ticketed.
Runs against any checkout whose `helpdesk` CLI is on this interpreter (so before and after compare).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aioimaplib
import aiosmtplib
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import fresh_database

from standins.environment import standin_environment
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn

ADMIN_DSN = os.environ.get("HELPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
_DIGITS = re.compile(rb"[0-9 ]+")
_serial = 0


def emit(**record: Any) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


_TEXTS = (
    "Dear TSCC, we need guidance on the METT questionnaire for protected areas under Target 3 and data "
    "for the national report.",
    "Здравствуйте! Просим помочь с оценкой экосистемных услуг и восстановлением деградированных земель "
    "(Цель 2) в Каракалпакстане.",
)


def fresh_mails(count: int) -> list[bytes]:
    """Plain requests, each answered by one receipt (the bare loop sends one reply per mail too), with
    Message-IDs unique across rounds: a repeated id would be a cheap duplicate, not a request."""
    global _serial
    out = []
    for n in range(count):
        message = EmailMessage()
        message["From"] = f"Sender {n} <s{n % 200}@ngo{n % 7}.example.org>"
        message["To"] = "helpdesk@tscc.example"
        message["Subject"] = f"Request {_serial}-{n}"
        message["Message-ID"] = f"<b{_serial}.{n}@bench.example>"
        message.set_content(_TEXTS[n % 2])
        out.append(message.as_bytes())
    _serial += 1
    return out


# The bare loop reads its own folder: intake takes every UID above its checkpoint in INBOX, read or not.
BARE_FOLDER = "Bare"


async def append_all(imap: ImapStandIn, mails: list[bytes], folder: str = "INBOX") -> None:
    client = aioimaplib.IMAP4(imap.host, imap.port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(imap.user, imap.password)
    if folder != "INBOX":
        await client.create(folder)  # NO when it exists: fine
    for raw in mails:
        response = await client.append(raw, mailbox=folder)
        assert response.result == "OK", response
    await client.logout()


async def bare(imap: ImapStandIn, smtp: SmtpStandIn) -> tuple[float, float, int]:
    """The floor: the same network I/O per mail with nothing in between. Returns all seconds, the
    seconds of those spent sending the replies, and the count."""
    started = time.perf_counter()
    client = aioimaplib.IMAP4(imap.host, imap.port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(imap.user, imap.password)
    await client.select(BARE_FOLDER)
    smtp_client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, use_tls=False, start_tls=False)
    await smtp_client.connect()
    response = await client.uid_search("UNSEEN", charset=None)
    uids = [int(t) for line in response.lines if _DIGITS.fullmatch(bytes(line).strip()) for t in line.split()]
    sending = 0.0
    for uid in uids:
        fetched = await client.uid("fetch", str(uid), "(BODY.PEEK[])")
        assert fetched.result == "OK"
        stored = await client.uid("store", str(uid), "+FLAGS", r"(\Seen)")
        assert stored.result == "OK"
        reply = EmailMessage()
        reply["From"], reply["To"], reply["Subject"] = "helpdesk@tscc.example", "r@ngo.example", f"Re {uid}"
        reply.set_content("Registered.")
        sent_at = time.perf_counter()
        await smtp_client.send_message(reply)
        sending += time.perf_counter() - sent_at
    await smtp_client.quit()
    await client.logout()
    return time.perf_counter() - started, sending, len(uids)


def env_for(url: str, imap: ImapStandIn, smtp: SmtpStandIn) -> dict[str, str]:
    return {
        **os.environ,
        "HELPDESK_DATABASE_URL": url,
        **standin_environment(imap=imap, smtp=smtp),
        "HELPDESK_MAIL_FROM": "helpdesk@tscc.example",
        "HELPDESK_MAIL_ACK_LIMIT_PER_HOUR": "1000000",  # a handful of senders: let every receipt through
        "HELPDESK_REPORT_DAY": "0",
    }


async def cli(env: dict[str, str], cwd: str, *args: str) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "helpdesk.cli", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"helpdesk {' '.join(args)}: {process.returncode}\n{err.decode()[-2000:]}")
    return time.perf_counter() - started


# One `mail poll --once` in a fresh interpreter, timed from after open_runtime (the start-up) to the last
# receipt sent. Works on checkouts before the batch intake too (poll_email_once(runtime) there).
POLL_ONCE = r"""
import asyncio, json, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from helpdesk.config import Settings
from helpdesk.service import open_runtime

# Statements (before_cursor_execute on every engine; PostgreSQL's BEGIN/COMMIT are not among them) and ORM
# flushes, counted apart for intake and for the receipts.
counts = {"statements": 0, "flushes": 0}

def counter(key):
    def count(*_):
        counts[key] += 1
    return count

event.listen(Engine, "before_cursor_execute", counter("statements"))
event.listen(Session, "after_flush", counter("flushes"))

async def main():
    async with open_runtime(Settings.from_env()) as runtime:
        poll = getattr(runtime, "poll_mail_once", None)
        if poll is None:
            from helpdesk.email.intake import poll_email_once
            poll = lambda: poll_email_once(runtime)
        # The parser worker's start (an interpreter and its imports) is start-up too, not a mail's cost.
        mail = getattr(runtime, "mail", None)
        if mail is not None:
            parser = mail.parser
        else:
            from helpdesk.email.parser_process import GuardedParser
            parser = runtime.mail_parser = GuardedParser()
        await parser.parse(b"From: a@b.example\r\nMessage-ID: <warm@b.example>\r\n\r\nwarm")
        counts.update(statements=0, flushes=0)
        started = time.perf_counter()
        result = await poll()
        polled = time.perf_counter()
        intake = dict(counts)
        while await runtime.worker.deliver_due():
            pass
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "receipts_seconds": time.perf_counter() - polled,
                          "committed": result.committed, "intake_statements": intake["statements"],
                          "intake_flushes": intake["flushes"],
                          "receipt_statements": counts["statements"] - intake["statements"]}))

asyncio.run(main())
"""


async def poll_once_timed(env: dict[str, str], cwd: str) -> tuple[float, float, int, dict[str, int]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", POLL_ONCE, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"poll once: {process.returncode}\n{err.decode()[-2000:]}")
    data = json.loads(out.decode().strip().splitlines()[-1])
    counted = {k: int(data[k]) for k in ("intake_statements", "intake_flushes", "receipt_statements")}
    return float(data["seconds"]), float(data["receipts_seconds"]), int(data["committed"]), counted


async def speed(kind: str, count: int, rounds: int) -> None:
    async with ImapStandIn() as imap, SmtpStandIn() as smtp, fresh_database(kind, ADMIN_DSN) as url:
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as cwd:
            env = env_for(url, imap, smtp)
            await cli(env, cwd, "db", "upgrade")
            await cli(env, cwd, "mail", "poll", "--once")  # warm: the checkpoint row, the parser's imports
            bare_ms: list[float] = []
            ours_ms: list[float] = []
            # The same split into intake (fetch, parse, receive, mark) and receipts (the SMTP sends, with
            # the delivery worker's claims and marks on our side).
            bare_intake_ms: list[float] = []
            ours_intake_ms: list[float] = []
            totals: dict[str, int] = {}
            for _ in range(rounds):
                await append_all(imap, fresh_mails(count), BARE_FOLDER)
                seconds, sending, done = await bare(imap, smtp)
                assert done == count, done
                bare_ms.append(seconds / count * 1000)
                bare_intake_ms.append((seconds - sending) / count * 1000)
                await append_all(imap, fresh_mails(count))
                before = len(smtp.messages)
                seconds, receipts_seconds, committed, counted = await poll_once_timed(env, cwd)
                for key, value in counted.items():
                    totals[key] = totals.get(key, 0) + value
                receipts = len(smtp.messages) - before
                assert committed == count and receipts == count, (committed, receipts)
                ours_ms.append(seconds / count * 1000)
                ours_intake_ms.append((seconds - receipts_seconds) / count * 1000)
            bare_median = statistics.median(bare_ms)
            ours_median = statistics.median(ours_ms)
            emit(
                bench="email_intake_with_receipts",
                database=kind,
                messages=count,
                rounds=rounds,
                bare_ms_per_mail=[round(v, 2) for v in bare_ms],
                ours_ms_per_mail=[round(v, 2) for v in ours_ms],
                ratio=round(ours_median / bare_median, 2),
                bare_intake_ms_per_mail=[round(v, 2) for v in bare_intake_ms],
                ours_intake_ms_per_mail=[round(v, 2) for v in ours_intake_ms],
                intake_ratio=round(statistics.median(ours_intake_ms) / statistics.median(bare_intake_ms), 2),
                **{f"{key}_per_mail": round(value / (count * rounds), 2) for key, value in totals.items()},
            )


async def inbound_count(url: str) -> int:
    import sqlite3

    path = url.split("///", 1)[1]
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            row = connection.execute("SELECT count(*) FROM messages WHERE kind = 'inbound'").fetchone()
            return int(row[0])
    except sqlite3.Error:
        return 0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def memory(count: int) -> None:
    marks = sorted({m for m in (1000, 5000, 10000, count) if m <= count})
    async with ImapStandIn() as imap, SmtpStandIn() as smtp, fresh_database("sqlite", ADMIN_DSN) as url:
        with tempfile.TemporaryDirectory(prefix="bench-batch-mem-") as cwd:
            env = env_for(url, imap, smtp) | {"HELPDESK_IMAP_POLL_INTERVAL": "2"}
            await cli(env, cwd, "db", "upgrade")
            await append_all(imap, fresh_mails(count))
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "helpdesk.cli", "run", env=env, cwd=cwd,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            started = time.perf_counter()
            samples: dict[str, float] = {}
            try:
                for mark in marks:
                    while await inbound_count(url) < mark:
                        if process.returncode is not None:
                            raise RuntimeError("helpdesk run ended")
                        await asyncio.sleep(0.2)
                    samples[f"rss_mb_at_{mark}"] = rss_mb(process.pid)
                    samples[f"seconds_to_{mark}"] = round(time.perf_counter() - started, 1)
            finally:
                process.terminate()
                await process.wait()
            emit(bench="helpdesk_run_rss_over_backlog", database="sqlite", messages=count, **samples)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--memory-messages", type=int, default=10000)
    args = parser.parse_args()
    for kind in args.databases.split(","):
        if kind:
            await speed(kind, args.messages, args.rounds)
    if args.memory_messages:
        await memory(args.memory_messages)


if __name__ == "__main__":
    assert asyncpg  # the PostgreSQL run needs it (bench_scale's fresh_database)
    asyncio.run(main())
