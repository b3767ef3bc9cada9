"""Updates on their way to the bot: the queue, getUpdates long polling, and webhook delivery."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from standins.telegram_api.recording import CallLog
from standins.telegram_api.wire import BotApiError

# What Telegram sends when allowed_updates is empty or never set: everything except these.
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class UpdateFeed(CallLog):
    def __init__(self) -> None:
        super().__init__()
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_last_error: tuple[int, str] | None = None
        self.webhook_deliveries: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._pending: list[dict[str, Any]] = []
        self._poll_generation = 0
        self._allowed_updates: list[str] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._pending)

    async def push_update(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Queue a raw update (``update_id`` added when missing) for getUpdates or the webhook."""
        stored = dict(update)
        if "update_id" not in stored:
            stored["update_id"] = next(self._update_ids)
        else:
            # Keep our counter ahead so later updates still sort after this one.
            self._update_ids = itertools.count(max(int(stored["update_id"]) + 1, next(self._update_ids)))
        async with self._changed:
            self._pending.append(stored)
            self._changed.notify_all()
        return stored

    async def wait_for_poll(self, count: int = 1, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Until ``count`` getUpdates calls have arrived (``calls`` shows a long poll only once it ends)."""

        async def wait() -> None:
            async with self._changed:
                while self._poll_generation < count:
                    await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{count} getUpdates calls did not arrive within {timeout}s") from None

    async def _stop_feed(self) -> None:
        """Wake every waiting long poll and end webhook delivery."""
        self._stopping = True
        async with self._changed:
            self._changed.notify_all()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _allowed(self, update: Mapping[str, Any]) -> bool:
        kind = next((k for k in update if k != "update_id"), None)
        if not self._allowed_updates:
            return kind not in _OPT_IN_UPDATE_TYPES
        return kind in self._allowed_updates

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise BotApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
                "delete the webhook first",
            )
        offset = params.get("offset")
        limit = max(1, min(int(params.get("limit") or 100), 100))
        timeout = max(0.0, float(params.get("timeout") or 0))
        if "allowed_updates" in params and isinstance(params["allowed_updates"], list):
            self._allowed_updates = [str(t) for t in params["allowed_updates"]]
        deadline = asyncio.get_running_loop().time() + timeout
        self._poll_generation += 1
        generation = self._poll_generation
        async with self._changed:
            # A newer getUpdates ends a waiting one, as Telegram does when two bot instances poll.
            self._changed.notify_all()
            while True:
                if generation != self._poll_generation:
                    raise BotApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot "
                        "instance is running",
                    )
                self._confirm(offset)
                ready = [u for u in self._pending if self._allowed(u)]
                remaining = deadline - asyncio.get_running_loop().time()
                if ready or remaining <= 0 or self._stopping or self.webhook_url:
                    return ready[:limit]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    def _confirm(self, offset: Any) -> None:
        if not isinstance(offset, int) or offset == 0:
            return
        if offset < 0:
            # A negative offset keeps only the last -offset updates, as in the Bot API.
            self._pending = self._pending[offset:]
        else:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        # Updates filtered out by allowed_updates are never delivered: Telegram drops them too.
        self._pending = [u for u in self._pending if self._allowed(u)]

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        if url and not url.startswith(("http://", "https://")):
            raise BotApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if params.get("drop_pending_updates"):
            self._pending.clear()
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = [str(t) for t in params["allowed_updates"]]
        self.webhook_url = url
        self.webhook_secret = params.get("secret_token") or None
        self.webhook_last_error = None
        if url and self._webhook_task is None:
            self._webhook_task = asyncio.get_running_loop().create_task(self._webhook_pump())
        async with self._changed:
            self._changed.notify_all()
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self.webhook_url = ""
        self.webhook_secret = None
        async with self._changed:
            self._changed.notify_all()
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
            "max_connections": 40,
        }
        if self._allowed_updates:
            info["allowed_updates"] = list(self._allowed_updates)
        if self.webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.webhook_last_error
        return info

    async def _webhook_pump(self) -> None:
        """POST pending updates, one at a time and in order, to the webhook while one is set."""
        if self._client is None:
            # trust_env=False: an HTTP(S)_PROXY in the environment must not divert loopback traffic.
            self._client = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=10))
        try:
            while not self._stopping:
                async with self._changed:
                    while not self._stopping and not (self.webhook_url and self._pending):
                        await self._changed.wait()
                    if self._stopping:
                        return
                    url, secret = self.webhook_url, self.webhook_secret
                    update = self._pending[0]
                if not self._allowed(update):
                    self._drop(update)
                    continue
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
                try:
                    async with self._client.post(url, json=update, headers=headers) as response:
                        ok = 200 <= response.status < 300
                        error = f"Wrong response from the webhook: {response.status} {response.reason}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    ok, error = False, f"Connection failed: {type(exc).__name__}"
                if ok:
                    self.webhook_deliveries.append(update)
                    self._drop(update)
                    self._notify_soon()
                else:
                    self.webhook_last_error = (int(time.time()), error)
                    await asyncio.sleep(0.2)
        finally:
            self._webhook_task = None

    def _drop(self, update: Mapping[str, Any]) -> None:
        self._pending = [u for u in self._pending if u["update_id"] != update["update_id"]]
