"""`helpdesk run` SIGKILLed in the middle of a batch of mail (issue #12), on SQLite and PostgreSQL.

Intake commits up to 50 mails in one transaction and only then marks them \\Seen in one UID STORE. Each
kill lands after a first batch is committed and while the next is being parsed and received. At every
kill: no mail is \\Seen on the server whose ticket is not committed. After a restart: every mail is
ticketed exactly once, every receipt sent, nothing left unseen.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from faults.helpers import (
    READY,
    HelpdeskProcess,
    duplicates,
    inbound_ids,
    outbox_state,
    record,
    request_mail,
    run_env,
    scale,
    ticket_count,
    wait_until,
)
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn

SEED = int(os.environ.get("HELPDESK_FAULT_SEED", "7"))


async def _seen_but_not_committed(
    imap: ImapStandIn, by_uid: dict[int, str], sessions: async_sessionmaker[AsyncSession]
) -> list[int]:
    committed = set(await inbound_ids(sessions, "email"))
    unseen = set(await imap.unseen_uids())
    return sorted(uid for uid, mid in by_uid.items() if uid not in unseen and mid not in committed)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_sigkill_in_the_middle_of_a_batch(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    imap: ImapStandIn,
    smtp: SmtpStandIn,
    workdir: Path,
) -> None:
    total = scale("batch_kill_mails", 120)
    rng = random.Random(SEED)
    by_uid: dict[int, str] = {}
    for n in range(total):
        raw = request_mail(n, tag="b")
        by_uid[await imap.append(raw)] = str(message_from_bytes(raw)["Message-ID"])
    env = run_env(database_url, imap=imap, smtp=smtp, HELPDESK_IMAP_POLL_INTERVAL="1")
    started = time.monotonic()
    kills: list[int] = []
    violations: list[int] = []
    for round_ in range(3):
        before = len(await inbound_ids(sessions, "email"))
        if before >= total:
            break
        process = await HelpdeskProcess(env, workdir, name=f"batch-{round_}").start()
        try:
            await process.wait_for_log(READY)
            # A batch committed in this run, then a moment into the next one (50 mails take 0.5 s or more).
            target = min(before + 1, total)

            async def committed_some(target: int = target) -> bool:
                return len(await inbound_ids(sessions, "email")) >= target

            await wait_until(committed_some, timeout=120, interval=0.005)
            await asyncio.sleep(rng.uniform(0.02, 0.6))
        finally:
            await process.kill()
        at_kill = len(await inbound_ids(sessions, "email"))
        kills.append(at_kill)
        violations += await _seen_but_not_committed(imap, by_uid, sessions)

    final = await HelpdeskProcess(env, workdir, name="batch-final").start()
    try:

        async def done() -> bool:
            state = await outbox_state(sessions)
            return len(await inbound_ids(sessions, "email")) >= total and not state.get("pending")

        finished = await wait_until(done, timeout=180)
    finally:
        code = await final.terminate()
    ids = await inbound_ids(sessions, "email")
    figures = record(
        "sigkill_mid_batch",
        database=database_url.split("+")[0],
        mails=total,
        inbound_at_each_kill=kills,
        kills_with_mail_waiting=sum(1 for k in kills if k < total),
        seen_but_not_committed=len(violations),
        tickets=await ticket_count(sessions),
        inbound_stored=len(ids),
        inbound_duplicates=duplicates(ids),
        outbox=dict(await outbox_state(sessions)),
        seconds=round(time.monotonic() - started, 1),
    )
    assert violations == [], figures
    assert any(k < total for k in kills), figures  # at least one kill landed before the end
    assert finished and code == 0, (figures, final.log_text()[-3000:])
    assert sorted(ids) == sorted(by_uid.values()), figures  # each mail once, none lost
    assert figures["tickets"] == total, figures
    assert await imap.unseen_uids() == [], figures
    assert figures["outbox"] == {"sent": total}, figures
