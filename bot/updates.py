"""Update processing: concurrent across chats, in order within one chat, and fair between chats.

PTB handles updates one at a time by default, so one slow database write would hold up every chat. Fully
concurrent processing would let two quick messages from one requester race (both open a ticket). Per chat
order keeps each conversation's meaning and lets fifty chats proceed side by side.

Fairness: PTB takes a processing slot *before* handing the update over, so a thousand queued updates of one
chat would hold every slot while waiting for that chat's turn, and another requester's message would wait
behind all of them. Here a chat's update first waits for its chat, and only then for a slot: a flooding chat
holds at most one slot, and everyone else's messages go straight through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# PTB's own (outer) semaphore is made wide enough never to bind; the real limit is ``self._slots``.
_UNBOUNDED = 1_000_000


class PerChatUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int = 64) -> None:
        super().__init__(_UNBOUNDED)
        self._slots = asyncio.BoundedSemaphore(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            async with self._slots:
                await coroutine
            return
        key = chat.id
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock, self._slots:
                await coroutine
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                # Forget idle chats: the bot may see many thousands over its life.
                del self._users[key]
                del self._locks[key]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
