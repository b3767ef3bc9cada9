"""Load on loopback: a workshop burst (200 Telegram messages and 200 emails within a minute) with the memory
of `helpdesk run` measured, and two `helpdesk run` processes on one PostgreSQL database sharing the outbox
and the IMAP mailbox: each message delivered once, no mail ticketed twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from faults.helpers import (
    HelpdeskProcess,
    duplicates,
    inbound_ids,
    outbox_state,
    percentile,
    record,
    request_mail,
    run_env,
    scale,
    ticket_count,
    wait_until,
)
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

READY = "Telegram channel polling"


async def _burst(
    bot_api: TelegramApiStandIn, imap: ImapStandIn, n: int, seconds: float, tag: str
) -> tuple[dict[int, float], dict[str, float]]:
    """n Telegram messages (40 people, several each) and n emails spread over ``seconds``."""
    telegram_at: dict[int, float] = {}
    email_at: dict[str, float] = {}
    gap = seconds / (2 * n)
    for i in range(n):
        chat = 900_000 + i  # one chat per message: each acknowledgement is then told apart by chat
        await bot_api.push_message(chat, f"Workshop question {i}: restoration of degraded land, Target 2")
        telegram_at[chat] = time.monotonic()
        await imap.append(request_mail(i, tag=tag))
        email_at[f"{tag}{i}@ngo.example.org"] = time.monotonic()
        await asyncio.sleep(gap)
    return telegram_at, email_at


def _latencies(
    bot_api: TelegramApiStandIn, smtp: SmtpStandIn, telegram_at: dict[int, float], email_at: dict[str, float]
) -> list[float]:
    first: dict[object, float] = {}
    for call in bot_api.calls_to("sendMessage"):
        if call.ok and "TSCC-" in str(call.params.get("text")):
            first.setdefault(call.params["chat_id"], call.at)
    values = [first[chat] - at for chat, at in telegram_at.items() if chat in first]
    # SMTP captures carry no clock; the email side is measured to ticket by the counts instead.
    return values


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_workshop_burst_bounded_memory(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    bot_api: TelegramApiStandIn,
    imap: ImapStandIn,
    smtp: SmtpStandIn,
    workdir: Path,
) -> None:
    n = scale("burst", 200)
    env = run_env(database_url, bot_api=bot_api, imap=imap, smtp=smtp)
    process = HelpdeskProcess(env, workdir, name="burst")
    await process.start()
    try:
        await process.wait_for_log(READY, timeout=60)
        await asyncio.sleep(1.0)
        rss_before = process.rss_kb()
        started = time.monotonic()
        telegram_at, email_at = await _burst(bot_api, imap, n, float(scale("burst_seconds", 30)), "w")

        async def handled() -> bool:
            tickets = len(await inbound_ids(sessions, "telegram")) + len(await inbound_ids(sessions, "email"))
            return tickets >= 2 * n and not (await outbox_state(sessions)).get("pending")

        finished = await wait_until(handled, timeout=180, interval=0.5)
        elapsed = time.monotonic() - started
        rss_after = process.rss_kb()
        peak = max(process.peak_kb, rss_after)
    finally:
        await process.terminate()
    telegram = await inbound_ids(sessions, "telegram")
    email = await inbound_ids(sessions, "email")
    latencies = _latencies(bot_api, smtp, telegram_at, email_at)
    acks = Counter(
        call.params["chat_id"]
        for call in bot_api.calls_to("sendMessage")
        if call.ok and "TSCC-" in str(call.params.get("text"))
    )
    figures = record(
        "workshop_burst",
        telegram_messages=n,
        emails=n,
        tickets=await ticket_count(sessions),
        lost=2 * n - len(set(telegram)) - len(set(email)),
        duplicates=duplicates(telegram) + duplicates(email),
        telegram_acknowledged=len(acks),
        telegram_shown_twice=sum(1 for v in acks.values() if v > 1),
        email_acknowledged=len({str(m.message["Message-ID"]) for m in smtp.messages}),
        seconds_to_handle_all=round(elapsed, 1),
        telegram_ack_p50_seconds=percentile(latencies, 0.5),
        telegram_ack_p99_seconds=percentile(latencies, 0.99),
        rss_before_mb=round(rss_before / 1024, 1),
        rss_after_mb=round(rss_after / 1024, 1),
        rss_peak_mb=round(peak / 1024, 1),
    )
    assert finished, (figures, process.log_text()[-3000:])
    assert figures["lost"] == 0 and figures["duplicates"] == 0, figures
    assert figures["telegram_acknowledged"] == n and figures["email_acknowledged"] == n, figures
    # Bounded: the burst may cost memory, not a multiple of the idle service.
    assert peak < rss_before + 150 * 1024, figures


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_processes_one_database_deliver_once_and_ingest_once(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    bot_api: TelegramApiStandIn,
    imap: ImapStandIn,
    smtp: SmtpStandIn,
    workdir: Path,
) -> None:
    n = scale("two_process_messages", 100)
    env = run_env(database_url, bot_api=bot_api, imap=imap, smtp=smtp, HELPDESK_DELIVERY_LEASE_SECONDS="60")
    # Both poll the same mailbox; only the first takes Telegram updates (Telegram allows one poller).
    env_second = {k: v for k, v in env.items() if not k.startswith("HELPDESK_TELEGRAM_")}
    env_second["HELPDESK_TELEGRAM_TOKEN"] = ""
    first = HelpdeskProcess(env, workdir, name="first")
    second = HelpdeskProcess(env_second, workdir, name="second")
    await first.start()
    await second.start()
    try:
        await first.wait_for_log(READY, timeout=60)
        await second.wait_for_log("help desk running", timeout=60)
        started = time.monotonic()
        await _burst(bot_api, imap, n, float(scale("two_process_seconds", 10)), "two")

        async def handled() -> bool:
            tickets = len(await inbound_ids(sessions, "telegram")) + len(await inbound_ids(sessions, "email"))
            return tickets >= 2 * n and not (await outbox_state(sessions)).get("pending")

        finished = await wait_until(handled, timeout=180, interval=0.5)
        elapsed = time.monotonic() - started
    finally:
        await first.terminate()
        await second.terminate()
    telegram = await inbound_ids(sessions, "telegram")
    email = await inbound_ids(sessions, "email")
    delivered = Counter(str(m.message["Message-ID"]) for m in smtp.messages)
    acks = Counter(
        call.params["chat_id"]
        for call in bot_api.calls_to("sendMessage")
        if call.ok and "TSCC-" in str(call.params.get("text"))
    )
    logs = first.log_text() + second.log_text()
    figures = record(
        "two_processes_one_database",
        messages=2 * n,
        tickets=await ticket_count(sessions),
        lost=2 * n - len(set(telegram)) - len(set(email)),
        ingested_twice=duplicates(telegram) + duplicates(email),
        mail_receipts_by_process_incl_duplicates_found=[
            first.log_text().count("→ TSCC-"),
            second.log_text().count("→ TSCC-"),
        ],
        outbox_items_delivered_by_process=[
            first.log_text().count("delivered outbox item"),
            second.log_text().count("delivered outbox item"),
        ],
        smtp_deliveries=sum(delivered.values()),
        smtp_sent_twice=sum(v - 1 for v in delivered.values() if v > 1),
        telegram_sent_twice=sum(v - 1 for v in acks.values() if v > 1),
        dead_letters=logs.count("kept as dead letter"),
        seconds=round(elapsed, 1),
    )
    assert finished, (figures, logs[-3000:])
    assert figures["lost"] == 0 and figures["ingested_twice"] == 0, figures
    assert figures["smtp_sent_twice"] == 0 and figures["telegram_sent_twice"] == 0, figures
    assert figures["dead_letters"] == 0, figures
