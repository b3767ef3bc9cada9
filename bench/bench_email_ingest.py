"""Email ingest speed and memory (issue 4), against pymap on loopback. Not a test.

    .venv/bin/python bench/bench_email_ingest.py [--messages 2000] [--memory-messages 10000]

1. Ingest N waiting messages (the test corpus cycled, unique Message-IDs) with the real intake
   (parse in a thread, receive into SQLite, UID checkpoint, mark seen), and time a bare aioimaplib loop
   that only fetches the same messages (UID SEARCH + UID FETCH BODY.PEEK[] one by one), side by side on
   the same server; report the ratio ours / bare.
2. Peak memory of a `poll once` over M waiting messages, in a fresh subprocess (ru_maxrss).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import aioimaplib

from helpdesk.config import Settings
from helpdesk.service import open_runtime
from standins.environment import standin_environment
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn

MAIL = Path(__file__).resolve().parent.parent / "tests" / "data" / "mail"
BENCH_DIR = str(Path(__file__).resolve().parent)
_MSGID = re.compile(rb"^Message-ID:[^\r\n]*\r?\n", re.IGNORECASE | re.MULTILINE)


def corpus_messages(count: int) -> list[bytes]:
    # The 1.5 MB attachment message would make this a benchmark of base64; it is left out.
    files = sorted(p for p in MAIL.glob("*.eml") if p.name != "huge_attachment.eml")
    raws = [p.read_bytes() for p in files]
    out = []
    for n in range(count):
        raw = _MSGID.sub(b"", raws[n % len(raws)])
        out.append(f"Message-ID: <bench{n}@bench.example>\r\n".encode() + raw)
    return out


async def fill(imap: ImapStandIn, messages: list[bytes]) -> None:
    client = aioimaplib.IMAP4(imap.host, imap.port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(imap.user, imap.password)
    for raw in messages:
        response = await client.append(raw, mailbox="INBOX")
        assert response.result == "OK", response
    await client.logout()


async def bare_fetch(imap: ImapStandIn) -> tuple[float, int]:
    started = time.perf_counter()
    client = aioimaplib.IMAP4(imap.host, imap.port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(imap.user, imap.password)
    await client.select("INBOX")
    response = await client.uid_search("ALL", charset=None)
    uids = [
        int(t)
        for line in response.lines
        if re.fullmatch(rb"[0-9 ]+", bytes(line).strip())
        for t in line.split()
    ]
    total = 0
    for uid in uids:
        fetched = await client.uid("fetch", str(uid), "(BODY.PEEK[])")
        total += sum(len(line) for line in fetched.lines if isinstance(line, bytearray))
    await client.logout()
    return time.perf_counter() - started, total


def settings_for(imap: ImapStandIn, smtp: SmtpStandIn, database: Path) -> Settings:
    return Settings.from_env(
        {
            "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            **standin_environment(imap=imap, smtp=smtp),
            "HELPDESK_MAIL_FROM": "helpdesk@tscc.example",
            # Every bench message comes from a handful of senders: let the receipts through.
            "HELPDESK_MAIL_ACK_LIMIT_PER_HOUR": "1000000",
        },
        cwd=database.parent,
    )


async def ours(imap: ImapStandIn, smtp: SmtpStandIn, database: Path) -> tuple[float, int]:
    async with open_runtime(settings_for(imap, smtp, database), create=True) as runtime:
        started = time.perf_counter()
        result = await runtime.poll_mail_once()
        elapsed = time.perf_counter() - started
    return elapsed, result.committed


async def speed(count: int) -> dict[str, object]:
    messages = corpus_messages(count)
    async with ImapStandIn() as imap, SmtpStandIn() as smtp:
        fill_started = time.perf_counter()
        await fill(imap, messages)
        fill_time = time.perf_counter() - fill_started
        bare_time, fetched_bytes = await bare_fetch(imap)
        with tempfile.TemporaryDirectory() as tmp:
            our_time, committed = await ours(imap, smtp, Path(tmp) / "bench.db")
        bare_again, _ = await bare_fetch(imap)  # the server warmed up either way: take the faster bare run
    bare_best = min(bare_time, bare_again)
    return {
        "messages": count,
        "bytes": fetched_bytes,
        "append_s": round(fill_time, 2),
        "bare_fetch_s": round(bare_best, 2),
        "ours_s": round(our_time, 2),
        "committed": committed,
        "ratio_ours_to_bare": round(our_time / bare_best, 2),
        "ours_msgs_per_s": round(count / our_time, 1),
    }


CHILD = r"""
import asyncio, json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {bench!r})
from bench_email_ingest import ours, settings_for
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn

class Running:
    def __init__(self, host, port, user, password):
        self.host, self.port, self.user, self.password = host, port, user, password

async def main():
    imap = Running({host!r}, {port}, {user!r}, {password!r})
    smtp = Running({smtp_host!r}, {smtp_port}, None, None)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elapsed, committed = await ours(imap, smtp, Path({database!r}))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {{"committed": committed, "seconds": elapsed, "rss_before_kb": before, "peak_rss_kb": peak}}
    print(json.dumps(result))

asyncio.run(main())
"""


async def memory(count: int) -> dict[str, object]:
    messages = corpus_messages(count)
    async with ImapStandIn() as imap, SmtpStandIn() as smtp:
        await fill(imap, messages)
        del messages
        with tempfile.TemporaryDirectory() as tmp:
            code = CHILD.format(
                bench=BENCH_DIR,
                host=imap.host,
                port=imap.port,
                user=imap.user,
                password=imap.password,
                smtp_host=smtp.host,
                smtp_port=smtp.port,
                database=str(Path(tmp) / "mem.db"),
            )
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await child.communicate()
            if child.returncode != 0:
                raise RuntimeError(err.decode()[-2000:])
    data = json.loads(out.decode().strip().splitlines()[-1])
    return {
        "messages": count,
        "committed": data["committed"],
        "seconds": round(data["seconds"], 1),
        "rss_at_start_mb": round(data["rss_before_kb"] / 1024, 1),
        "peak_rss_mb": round(data["peak_rss_kb"] / 1024, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--memory-messages", type=int, default=10000)
    args = parser.parse_args()
    print(json.dumps({"speed": await speed(args.messages)}, ensure_ascii=False))
    if args.memory_messages:
        print(json.dumps({"memory": await memory(args.memory_messages)}, ensure_ascii=False))
    print(f"bench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
