"""Webhook mode (issue #10, item 2): a POST to the listener proves nothing unless it carries the secret.

The attack runs through the real `serve()`: PTB's own webhook server on 127.0.0.1, the desk on SQLite and
PostgreSQL, the Bot API stand-in recording setWebhook (the public https URL points nowhere real). Forged
updates claim the staff user's id and run `/ticket REF` and `/reply REF …`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram_harness import STAFF, STAFF_CHAT, STAFF_USER

from helpdesk.config import Secret, Settings, TelegramSettings
from helpdesk.db.models import AuditEvent, Message, OutboxItem
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import Runtime, open_runtime, serve
from helpdesk.usecases.receive import receive
from standins.ports import free_port
from standins.telegram_api import TelegramApiStandIn

SECRET = "Right_webhook-secret-81"
HOOK_PATH = "telegram-hook"
ATTACKER_CHAT = 666_001
REQUESTER_CHAT = 5960
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_update_ids = itertools.count(1)


def forged_update(chat_id: int, text: str) -> dict[str, Any]:
    """What Telegram would POST for a message from the staff user; anyone can write these bytes."""
    command = text.split()[0]
    return {
        "update_id": next(_update_ids),
        "message": {
            "message_id": next(_update_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Aziza"},
            "from": {**STAFF_USER, "is_bot": False},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        },
    }


class Service:
    def __init__(self, runtime: Runtime, api: TelegramApiStandIn, url: str) -> None:
        self.runtime, self.api, self.url = runtime, api, url

    async def post(self, update: dict[str, Any], secret: str | None) -> int:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        async with aiohttp.ClientSession() as client:
            async with client.post(self.url, json=update, headers=headers) as answer:
                return answer.status

    async def counts(self) -> tuple[int, int, int]:
        async with self.runtime.desk.sessions() as session:
            return (
                await session.scalar(select(func.count()).select_from(Message)) or 0,
                await session.scalar(select(func.count()).select_from(OutboxItem)) or 0,
                await session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
            )

    async def bodies(self) -> list[str]:
        async with self.runtime.desk.sessions() as session:
            return list(await session.scalars(select(Message.body).order_by(Message.id)))


async def _listening(url: str, within: float = 60.0) -> None:
    """PTB binds its server after setWebhook: wait until a connection is accepted (a bounded wait)."""
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as client:
        while True:
            try:
                async with client.get(url):
                    return
            except aiohttp.ClientConnectorError:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"the webhook listener at {url} did not open") from None
                await asyncio.sleep(0.05)


@pytest.fixture
async def service(database_url: str, engine: AsyncEngine) -> AsyncIterator[Service]:
    port = free_port()
    async with TelegramApiStandIn() as api:
        settings = Settings(
            database_url=database_url,
            telegram=TelegramSettings(
                Secret(api.token),
                api.base_url,
                STAFF_CHAT,
                webhook_url=f"https://helpdesk.example.invalid/{HOOK_PATH}",
                webhook_port=port,
                webhook_secret=Secret(SECRET),
            ),
            staff_telegram_ids=frozenset({STAFF}),
            report_day=0,
        )
        assert settings.telegram is not None and settings.telegram.webhook_listen == "127.0.0.1"
        async with open_runtime(settings, migrate=False) as runtime:
            stop = asyncio.Event()
            running = asyncio.create_task(serve(runtime, stop))
            try:
                set_hook = await api.wait_for_call("setWebhook", timeout=60)
                assert set_hook.params["url"] == settings.telegram.webhook_url
                assert set_hook.params["secret_token"] == SECRET
                url = f"http://127.0.0.1:{port}/{HOOK_PATH}"
                await _listening(url)
                yield Service(runtime, api, url)
            finally:
                stop.set()
                await asyncio.wait_for(running, 60)


async def test_forged_webhook_posts_are_refused_and_change_nothing(service: Service) -> None:
    api = service.api
    sender = Sender(name="Aliya", telegram_user_id=REQUESTER_CHAT, telegram_chat_id=REQUESTER_CHAT)
    received = await receive(
        service.runtime.desk,
        InboundMessage("telegram", f"{REQUESTER_CHAT}:1", sender, "Confidential: our draft NBSAP budget"),
    )
    ref = received.reference
    await api.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == REQUESTER_CHAT, timeout=30)
    await api.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == STAFF_CHAT, timeout=30)
    before, sends_before = await service.counts(), len(api.calls_to("sendMessage"))

    statuses = []
    for secret in (None, "", "wrong-secret", SECRET + "x"):
        for chat in (ATTACKER_CHAT, STAFF):
            for text in (f"/ticket {ref}", f"/reply {ref} Forged: send your password to mallory"):
                statuses.append(await service.post(forged_update(chat, text), secret))
    assert set(statuses) == {403}, statuses
    assert await service.counts() == before
    assert len(api.calls_to("sendMessage")) == sends_before

    # The same updates with the right secret are processed: the refusals above were the secret's doing.
    # (From the staff member's own private chat; item 8 keeps ticket content out of other chats.)
    assert await service.post(forged_update(STAFF, f"/ticket {ref}"), SECRET) == 200
    shown = await api.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == STAFF, timeout=30)
    assert "draft NBSAP budget" in shown.params["text"]
    assert await service.post(forged_update(STAFF, f"/reply {ref} Answer from the Centre"), SECRET) == 200
    await api.wait_for_call(
        "sendMessage",
        lambda c: c.params["chat_id"] == REQUESTER_CHAT and "Answer from the Centre" in c.params["text"],
        timeout=30,
    )

    bodies = await service.bodies()
    assert "Answer from the Centre" in bodies and not any("Forged" in body for body in bodies)
    assert not [c for c in api.calls_to("sendMessage") if c.params["chat_id"] == ATTACKER_CHAT]
    assert not [c for c in api.calls_to("sendMessage") if "Forged" in c.params["text"]]
    shown_to_staff = [c for c in api.calls_to("sendMessage") if c.params["chat_id"] == STAFF]
    assert len(shown_to_staff) == 2  # the ticket, and "replied"; none of the 16 forged POSTs


async def test_start_webhook_refuses_to_run_without_a_secret() -> None:
    from bot.application import TelegramStartError, build_application, start_webhook

    async def on_inbound(inbound: InboundMessage) -> None:
        raise AssertionError("nothing may arrive")

    async with TelegramApiStandIn() as api:
        app = build_application(api.token, api.base_url, on_inbound)
        with pytest.raises(TelegramStartError, match="HELPDESK_TELEGRAM_WEBHOOK_SECRET"):
            await start_webhook(app, webhook_url="https://x.invalid/t", secret_token="", port=free_port())
        await app.shutdown()
        assert not api.calls_to("setWebhook") and not api.calls_to("getMe")
