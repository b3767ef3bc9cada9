"""A Telegram desk harness shared by the tests: the real PTB application over HTTP against the Bot API
stand-in, the real desk (SQLite or PostgreSQL) and the delivery worker sending what the desk queues."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.application import build_application, start_polling, stop_application
from bot.sender import TelegramSender
from helpdesk.db.models import AuditEvent, Ticket
from helpdesk.desk import Desk
from helpdesk.safe_intake import SafeIntake
from helpdesk.service import connect
from helpdesk.spool import InboundSpool
from helpdesk.usecases.cards import queue_card_for
from helpdesk.worker import DeliveryWorker, RetryPolicy
from standins.telegram_api import TelegramApiStandIn

STAFF_CHAT = -1009000
STAFF = 777001
OTHER_STAFF = 777002
STAFF_USER = {"id": STAFF, "first_name": "Aziza", "username": "aziza_tscc", "language_code": "ru"}
FAST = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, lease=30)


@dataclass
class Harness:
    api: TelegramApiStandIn
    desk: Desk
    app: Any
    intake: SafeIntake

    async def until(self, check: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            value = await check()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    async def tickets(self) -> list[Ticket]:
        async with self.desk.sessions() as session:
            return list(await session.scalars(select(Ticket).order_by(Ticket.id)))

    async def audit(self, action: str) -> list[AuditEvent]:
        async with self.desk.sessions() as session:
            return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == action)))

    async def sent_to(self, chat_id: int, count: int = 1) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            sent = self.api.sent_messages(chat_id)
            return sent if len(sent) >= count else None

        return await self.until(enough)

    async def card(self, reference: str, contains: str = "") -> dict[str, Any]:
        async def find() -> dict[str, Any] | None:
            for message in self.api.sent_messages(STAFF_CHAT):
                if message["text"].startswith(reference) and contains in message["text"]:
                    return message
            return None

        return await self.until(find)


@contextlib.asynccontextmanager
async def open_harness(
    desk: Desk,
    *,
    spool_dir: Path | None = None,
    grace_seconds: float = 60.0,
    retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
) -> AsyncIterator[Harness]:
    """The stand-in, the PTB application (staff chat STAFF_CHAT, staff STAFF and OTHER_STAFF), a worker,
    and the intake as `helpdesk run` wires it: retried, kept in an on-disk spool and replayed."""
    with tempfile.TemporaryDirectory(prefix="spool-") as scratch:
        async with TelegramApiStandIn() as api:
            sender = TelegramSender(api.token, api.base_url)
            worker = DeliveryWorker(desk.sessions, {"telegram": sender}, policy=FAST, poll_interval=0.1)
            desk.staff_telegram_chat_id = STAFF_CHAT
            connect(desk, worker)
            worker.on_give_up = lambda session, ticket_id: queue_card_for(desk, session, ticket_id)
            intake = SafeIntake(
                desk,
                InboundSpool(spool_dir or Path(scratch)),
                sender=sender,
                grace_seconds=grace_seconds,
                retry_delays=retry_delays,
                replay_interval=0.2,
            )
            app = build_application(
                api.token,
                api.base_url,
                intake.take,
                desk=desk,
                staff_chat_id=STAFF_CHAT,
                staff_ids=frozenset({STAFF, OTHER_STAFF}),
            )
            stop = asyncio.Event()
            delivery = asyncio.create_task(worker.run(stop))
            replay = asyncio.create_task(intake.run(stop))
            await start_polling(app, poll_timeout=1)
            try:
                yield Harness(api, desk, app, intake)
            finally:
                await stop_application(app)
                stop.set()
                await delivery
                await replay
                await sender.close()
