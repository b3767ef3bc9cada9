"""Peers failing under a running `helpdesk run`: the SMTP server down for a while, the Bot API failing a
fifth of the time (429, 500, timeouts, dropped connections), the IMAP server restarted mid-IDLE, and
PostgreSQL restarted under load. Each: nothing lost, everything delivered once the peer is back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from faults.helpers import (
    READY,
    HelpdeskProcess,
    PrivatePostgres,
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
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn


def _acked_chats(api: TelegramApiStandIn) -> Counter[int]:
    return Counter(
        call.params["chat_id"]
        for call in api.calls_to("sendMessage")
        if call.ok and "TSCC-" in str(call.params.get("text"))
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_smtp_down_then_back_every_acknowledgement_delivered(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    imap: ImapStandIn,
    workdir: Path,
) -> None:
    mails = scale("smtp_down_mails", 30)
    down_for = float(scale("smtp_down_seconds", 6))
    smtp = SmtpStandIn()
    await smtp.start()
    port = smtp.port
    await smtp.stop()  # down before the service even starts
    process = HelpdeskProcess(run_env(database_url, imap=imap, smtp=smtp), workdir, name="smtp-down")
    await process.start()
    try:
        await process.wait_for_log(READY)
        for n in range(mails):
            await imap.append(request_mail(n, tag="smtpdown"))

        async def ingested() -> bool:
            return len(await inbound_ids(sessions, "email")) >= mails

        assert await wait_until(ingested, timeout=60)

        async def tried_while_down() -> bool:
            return "will retry" in process.log_text()

        # The server stays down until the worker has met it down at least once (an event, not a clock:
        # on a loaded machine the whole down time can pass before the first receipt is due).
        await wait_until(tried_while_down, timeout=60)
        await asyncio.sleep(max(0.0, down_for - (time.monotonic() - process.started_at)))
        failed_attempts = sum(1 for line in process.log_text().splitlines() if "will retry" in line)
        back = time.monotonic()
        await smtp.start(port=port)

        async def all_sent() -> bool:
            return (await outbox_state(sessions)) == Counter({"sent": mails})

        delivered = await wait_until(all_sent, timeout=90)
        catch_up = time.monotonic() - back
    finally:
        await process.terminate()
        await smtp.stop()
    message_ids = [str(m.message["Message-ID"]) for m in smtp.messages]
    figures = record(
        "smtp_down_then_back",
        mails=mails,
        smtp_down_seconds=down_for,
        failed_attempts_while_down=failed_attempts,
        acknowledgements_delivered=len(set(message_ids)),
        smtp_deliveries=len(message_ids),
        seconds_to_deliver_all_after_return=round(catch_up, 1),
        outbox=dict(await outbox_state(sessions)),
        tickets=await ticket_count(sessions),
    )
    assert delivered, figures
    assert figures["acknowledgements_delivered"] == mails and figures["tickets"] == mails, figures
    assert failed_attempts > 0, figures


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_bot_api_failing_a_fifth_of_the_time_every_reply_delivered(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    bot_api: TelegramApiStandIn,
    workdir: Path,
) -> None:
    chats = scale("flaky_chats", 40)
    bot_api.fail_randomly(0.2, methods=("sendMessage", "getUpdates"), seed=11, delay=6.0)
    env = run_env(database_url, bot_api=bot_api)
    process = HelpdeskProcess(env, workdir, name="flaky-bot-api")
    started = time.monotonic()
    await process.start()
    try:
        await process.wait_for_log("Telegram channel polling", timeout=60)
        pushed: dict[int, float] = {}
        for n in range(chats):
            chat = 700_000 + n
            await bot_api.push_message(chat, f"Request {n}: data on protected areas, Target 3")
            pushed[chat] = time.monotonic()

        async def all_acked() -> bool:
            return len(_acked_chats(bot_api)) >= chats and not (await outbox_state(sessions)).get("pending")

        delivered = await wait_until(all_acked, timeout=120)
    finally:
        await process.terminate()
    acked = _acked_chats(bot_api)
    first_ack = {
        call.params["chat_id"]: call.at
        for call in reversed(bot_api.calls_to("sendMessage"))
        if call.ok and "TSCC-" in str(call.params.get("text"))
    }
    latencies = [first_ack[chat] - at for chat, at in pushed.items() if chat in first_ack]
    ids = await inbound_ids(sessions, "telegram")
    figures = record(
        "bot_api_fails_one_in_five",
        requests=chats,
        faults_injected=bot_api.fault_counts,
        acknowledged=len(acked),
        shown_twice=sum(1 for n in acked.values() if n > 1),
        tickets=await ticket_count(sessions),
        inbound_duplicates=len(ids) - len(set(ids)),
        outbox=dict(await outbox_state(sessions)),
        p50_seconds=percentile(latencies, 0.5),
        p99_seconds=percentile(latencies, 0.99),
        seconds=round(time.monotonic() - started, 1),
    )
    assert delivered, figures
    assert figures["acknowledged"] == chats and figures["tickets"] == chats, figures
    assert figures["inbound_duplicates"] == 0, figures
    assert sum(bot_api.fault_counts.values()) > 0, figures


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_imap_restarted_mid_idle_intake_resumes(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    imap: ImapStandIn,
    smtp: SmtpStandIn,
    workdir: Path,
) -> None:
    restarts = scale("imap_restarts", 2)
    env = run_env(database_url, imap=imap, smtp=smtp, HELPDESK_IMAP_POLL_INTERVAL="3")
    process = HelpdeskProcess(env, workdir, name="imap-restart")
    resumed_after: list[float] = []
    await process.start()
    try:
        await process.wait_for_log(READY)
        expected = 0
        for n in range(restarts + 1):
            await imap.append(request_mail(n, tag="idle"))
            expected += 1

            async def got(expected: int = expected) -> bool:
                return len(await inbound_ids(sessions, "email")) >= expected

            assert await wait_until(got, timeout=60), process.log_text()[-3000:]
            if n == restarts:
                break
            # The intake is back in IDLE. (pymap may withhold the EXISTS push until DONE, so the intake
            # also polls every 3 s; what matters here is that it notices the restart and reconnects.)
            await asyncio.sleep(1.0)
            restarted = time.monotonic()
            await imap.restart()
            await imap.append(request_mail(1000 + n, tag="idle"))
            expected += 1

            async def resumed(expected: int = expected) -> bool:
                return len(await inbound_ids(sessions, "email")) >= expected

            assert await wait_until(resumed, timeout=60), process.log_text()[-3000:]
            resumed_after.append(time.monotonic() - restarted)
    finally:
        await process.terminate()
    ids = await inbound_ids(sessions, "email")
    figures = record(
        "imap_restarted_mid_idle",
        restarts=restarts,
        mails=expected,
        ingested=len(ids),
        duplicates=len(ids) - len(set(ids)),
        seconds_to_resume_max=round(max(resumed_after), 2),
    )
    assert len(ids) == expected and len(set(ids)) == expected, figures


async def test_postgresql_restarted_under_load_nothing_lost(
    imap: ImapStandIn, smtp: SmtpStandIn, bot_api: TelegramApiStandIn, workdir: Path
) -> None:
    messages = scale("pg_restart_messages", 60)  # half by Telegram, half by email, over a few seconds
    restarts = scale("pg_restarts", 2)
    postgres = PrivatePostgres()
    try:
        await postgres.setup()
        await upgrade(postgres.url)
        engine = make_engine(postgres.url)
        sessions = make_sessions(engine)
        env = run_env(postgres.url, imap=imap, smtp=smtp, bot_api=bot_api)
        process = HelpdeskProcess(env, workdir, name="pg-restart")
        await process.start()
        try:
            await process.wait_for_log("Telegram channel polling", timeout=60)
            restart_at = {messages * (k + 1) // (restarts + 1) for k in range(restarts)}
            downtime: list[float] = []
            for n in range(messages):
                if n % 2:
                    await bot_api.push_message(800_000 + n, f"Request {n}: wetlands inventory, Target 2")
                else:
                    await imap.append(request_mail(n, tag="pg"))
                await asyncio.sleep(0.05)
                if n in restart_at:
                    began = time.monotonic()
                    await engine.dispose()
                    await postgres.restart()
                    downtime.append(time.monotonic() - began)

            async def done() -> bool:
                try:
                    state = await outbox_state(sessions)
                    total = len(await inbound_ids(sessions, "telegram")) + len(
                        await inbound_ids(sessions, "email")
                    )
                except Exception:
                    return False
                return total >= messages and not state.get("pending")

            finished = await wait_until(done, timeout=120, interval=0.5)
        finally:
            await process.terminate()
        telegram = await inbound_ids(sessions, "telegram")
        email = await inbound_ids(sessions, "email")
        log = process.log_text()
        figures = record(
            "postgresql_restarted_under_load",
            restarts=restarts,
            downtime_seconds=[round(d, 2) for d in downtime],
            messages=messages,
            ticketed=len(set(telegram)) + len(set(email)),
            duplicates=len(telegram) + len(email) - len(set(telegram)) - len(set(email)),
            tickets=await ticket_count(sessions),
            outbox=dict(await outbox_state(sessions)),
            telegram_acknowledged=len(_acked_chats(bot_api)),
            email_acknowledged=len({str(m.message["Message-ID"]) for m in smtp.messages}),
            receive_retries_logged=log.count("retrying in"),
            requesters_told_it_failed=log.count("The desk failed to take"),
        )
        await engine.dispose()
        assert finished, (figures, log[-4000:])
        assert figures["ticketed"] == messages and figures["duplicates"] == 0, figures
        assert figures["telegram_acknowledged"] == messages // 2, figures
        assert figures["email_acknowledged"] == messages - messages // 2, figures
    finally:
        await postgres.cleanup()
