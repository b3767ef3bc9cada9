"""One Telegram requester floods the desk; another writes once. How long does the other wait, and what
does the flood cost in receipts, card posts and edits, tickets?

The real PTB application against the Bot API stand-in, the desk on SQLite (or --database), the delivery
worker sending to the stand-in. Two scenarios: ``--messages`` follow-ups from a requester with one open
ticket, then one message from another requester; and ``--new`` ``/new <text>`` commands from one requester.

    .venv/bin/python bench/bench_telegram_flood.py [--messages 1000] [--new 300] [--database URL]

Runs against whichever ``helpdesk`` and ``bot`` packages are importable, so the same script measures an
older checkout (``PYTHONPATH=/path/to/checkout``) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from sqlalchemy import func, select

from bot.application import build_application, start_polling, stop_application
from bot.sender import TelegramSender
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.db.models import Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from helpdesk.worker import DeliveryWorker
from standins.telegram_api import TelegramApiStandIn

STAFF_CHAT = -100777
FLOODER = 910_001
OTHER = 910_002


def _intake(desk: Desk, sender: TelegramSender, spool: Path) -> tuple[Callable[[Any], Awaitable[Any]], Any]:
    """What `helpdesk run` hands the bot: the safe intake where it exists, bare ``receive`` before it."""
    try:
        from helpdesk.safe_intake import SafeIntake
        from helpdesk.spool import InboundSpool
    except ImportError:
        from helpdesk.usecases.receive import receive

        async def take(inbound: Any) -> Any:
            return await receive(desk, inbound)

        return take, None
    intake = SafeIntake(desk, InboundSpool(spool), sender=sender)
    return intake.take, intake


async def _count(desk: Desk, chat: int) -> int:
    async with desk.sessions() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.kind == "inbound", Message.channel_message_id.like(f"{chat}:%"))
        )
    return found or 0


async def _until(check: Callable[[], Awaitable[bool]], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def run(database_url: str, follow_ups: int, new_requests: int, tmp: Path) -> dict[str, Any]:
    engine = make_engine(database_url)
    figures: dict[str, Any] = {}
    try:
        async with TelegramApiStandIn() as api:
            sender = TelegramSender(api.token, api.base_url)
            worker = DeliveryWorker(make_sessions(engine), {"telegram": sender}, poll_interval=0.2)
            desk = Desk(
                sessions=make_sessions(engine),
                outbox_written=worker.wake,
                staff_telegram_chat_id=STAFF_CHAT,
                composers=standard_composers(),
            )
            take, intake = _intake(desk, sender, tmp / "spool")
            app = build_application(api.token, api.base_url, take, desk=desk, staff_chat_id=STAFF_CHAT)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(worker.run(stop))]
            if intake is not None:
                tasks.append(asyncio.create_task(intake.run(stop)))
            await start_polling(app, poll_timeout=1)
            try:
                user = {"language_code": "en"}
                await api.push_message(FLOODER, "We need help with the wetlands inventory", user=user)
                await _until(lambda: _sent_any(api, FLOODER), 60)
                began = time.monotonic()
                for n in range(follow_ups):
                    await api.push_message(FLOODER, f"detail {n}", user=user)
                other_pushed = time.monotonic()
                await api.push_message(OTHER, "Request about invasive species monitoring", user=user)
                await _until(lambda: _sent_any(api, OTHER), 600)
                other_answered = next(
                    c.at for c in api.calls_to("sendMessage") if c.ok and c.params.get("chat_id") == OTHER
                )

                async def stored() -> bool:
                    return await _count(desk, FLOODER) >= follow_ups + 1

                await _until(stored, 600)
                stored_after = time.monotonic() - began
                # Let the outbox drain (receipts and cards still queued count too).
                await asyncio.sleep(3)
                figures["follow_ups"] = follow_ups
                figures["other_receipt_delay_s"] = round(other_answered - other_pushed, 2)
                figures["flood_stored_s"] = round(stored_after, 1)
                figures["flood_stored"] = await _count(desk, FLOODER) - 1
                figures["receipts_to_flooder"] = len(api.sent_messages(FLOODER))
                figures["card_posts"] = len(api.sent_messages(STAFF_CHAT))
                figures["card_edits"] = _edits(api)

                posts, edits = figures["card_posts"], figures["card_edits"]
                newcomer = FLOODER + 100
                for n in range(new_requests):
                    await api.push_message(
                        newcomer, f"/new Request number {n} about protected areas", user=user
                    )

                async def all_new_stored() -> bool:
                    return await _count(desk, newcomer) >= new_requests

                await _until(all_new_stored, 600)
                await asyncio.sleep(3)
                async with desk.sessions() as session:
                    tickets = await session.scalar(select(func.count()).select_from(Ticket))
                figures["new_commands"] = new_requests
                figures["new_stored"] = await _count(desk, newcomer)
                figures["new_tickets"] = (tickets or 0) - 2
                figures["new_receipts"] = len(api.sent_messages(newcomer))
                figures["new_card_posts"] = len(api.sent_messages(STAFF_CHAT)) - posts
                figures["new_card_edits"] = _edits(api) - edits
                # Queued as well as sent: the outbox may still be draining.
                figures["new_receipts_queued"] = await _queued(desk, str(newcomer))
                figures["cards_queued_total"] = await _queued(desk, str(STAFF_CHAT))
            finally:
                await stop_application(app)
                stop.set()
                await asyncio.gather(*tasks)
                await sender.close()
    finally:
        await engine.dispose()
    return figures


async def _queued(desk: Desk, recipient: str) -> int:
    async with desk.sessions() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.payload["recipient"].as_string() == recipient)
        )
    return found or 0


async def _sent_any(api: TelegramApiStandIn, chat: int) -> bool:
    return bool(api.sent_messages(chat))


def _edits(api: TelegramApiStandIn) -> int:
    return sum(1 for c in api.calls_to("editMessageText") if c.ok and c.params.get("chat_id") == STAFF_CHAT)


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--new", type=int, default=300)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{Path(tmp) / 'flood.db'}"
        await upgrade(url)
        figures = await run(url, args.messages, args.new, Path(tmp))
    for key, value in figures.items():
        print(f"{key:<24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
