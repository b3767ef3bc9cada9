"""A local stand-in for the Telegram Bot API, served over real HTTP on 127.0.0.1.

The unmodified python-telegram-bot client talks to it through ``base_url``/``base_file_url``, so the
tests and ``helpdesk demo`` exercise PTB's real wire code: form-encoded (or multipart) POSTs to
``/bot<token>/<method>``, ``{"ok": ..., "result": ...}`` answers, long polling, webhooks.

Usage::

    async with TelegramApiStandIn() as api:
        app = Application.builder().token(api.token).base_url(api.base_url).build()
        ...
        await api.push_message(chat_id=42, text="Hello", user={"language_code": "ru"})
        call = await api.wait_for_call("sendMessage")

It runs in the caller's event loop. Behaviour follows the real Bot API where it matters to a client:
per-chat message ids, offsets confirm updates, 409 for getUpdates while a webhook is set, 400 for
texts over 4096 characters, "message is not modified" on identical edits, 401 for a wrong token.
Unknown methods answer 400 (not Telegram's 404, which PTB would report as an invalid token).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["MAX_FILE_DOWNLOAD_SIZE", "MAX_MESSAGE_LENGTH", "ApiCall", "BotApiError", "TelegramApiStandIn"]

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units, as Telegram counts them
MAX_FILE_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files

DEFAULT_TOKEN = "1234567890:STAND-IN-TOKEN-for-local-tests-only"

# Every form field arrives as a string; these tell how to decode each key (Telegram does the same per method).
_INT_KEYS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "cache_time",
        "duration",
        "until_date",
    }
)
_JSON_KEYS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
        "media",
        "results",
    }
)
_BOOL_KEYS = frozenset(
    {
        "drop_pending_updates",
        "disable_notification",
        "protect_content",
        "show_alert",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "is_personal",
    }
)
# What Telegram sends when allowed_updates is empty or never set: everything except these.
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_MENTION_RE = re.compile(r"@[A-Za-z0-9_]{5,32}")


def utf16_len(text: str) -> int:
    """Length as Telegram measures texts and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


class BotApiError(Exception):
    """Raised inside a method implementation to answer ``{"ok": false, ...}``."""

    def __init__(
        self,
        code: int,
        description: str,
        *,
        retry_after: int | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        # ResponseParameters: retry_after, migrate_to_chat_id
        self.parameters: dict[str, Any] = dict(parameters or {})
        if retry_after is not None:
            self.parameters["retry_after"] = retry_after


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request the stand-in received."""

    method: str  # as the client spelled it, e.g. "sendMessage"
    params: dict[str, Any]  # decoded per key (ints, JSON objects, booleans)
    raw: dict[str, str]  # the form fields as sent
    ok: bool  # whether the stand-in answered ok: true
    result: Any = None  # the result, or the error description when not ok
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Failure:
    code: int
    description: str
    retry_after: int | None
    parameters: Mapping[str, Any] | None
    remaining: int
    skip: int


# What ``fail_randomly`` can do to a call: Telegram's flood control, a server error, an answer that
# comes too late, the connection dropped before the call is done, and the connection dropped after it
# was done (the client cannot tell it worked; a retry sends it again, as with the real Bot API).
FAULT_MODES = ("429", "500", "timeout", "drop", "drop_after")


@dataclass(slots=True)
class _RandomFaults:
    rate: float
    methods: frozenset[str]
    modes: tuple[str, ...]
    rng: random.Random
    delay: float
    retry_after: int
    injected: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    path: str
    data: bytes


Method = Callable[[dict[str, Any]], Awaitable[Any]]


class TelegramApiStandIn:
    """A Bot API server on 127.0.0.1 with a test/demo control surface (push updates, inspect calls)."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "tscc_helpdesk_bot",
        bot_first_name: str = "TSCC Help Desk",
    ) -> None:
        self.token = token
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        bot_id = token.split(":", 1)[0]
        self.bot_user: dict[str, Any] = {
            "id": int(bot_id) if bot_id.isdigit() else 1234567890,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.calls: list[ApiCall] = []
        # Replace or add a method: ``api.methods["sendPhoto"] = coroutine(params) -> result``.
        # Keys are lower-case (Telegram's method names are case-insensitive).
        self.methods: dict[str, Method] = {}
        self.unknown_methods: list[str] = []
        self.commands: list[dict[str, Any]] = []
        # Chats whose user "blocked the bot": sending there answers 403 like Telegram does.
        self.blocked_chats: set[int] = set()
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_last_error: tuple[int, str] | None = None
        self.webhook_deliveries: list[dict[str, Any]] = []

        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._pending: list[dict[str, Any]] = []
        self._poll_generation = 0
        self._allowed_updates: list[str] | None = None
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._sent: dict[int, list[tuple[int, int]]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._random_faults: _RandomFaults | None = None
        self._changed = asyncio.Condition()
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._builtin: dict[str, Method] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "answercallbackquery": self._true,
            "sendchataction": self._true,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getfile": self._get_file,
            "close": self._true,
            "logout": self._true,
        }

    # ----------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> TelegramApiStandIn:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # handler_cancellation + a short shutdown_timeout: a pending long poll must not hold up stop().
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._stopping = False
        log.debug("Bot API stand-in listening on %s:%s", self.host, self.port)
        return self

    async def stop(self) -> None:
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
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramApiStandIn:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Bot API stand-in is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """PTB's ``base_url`` form: the token is appended by the client."""
        return f"{self.root_url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.root_url}/file/bot"

    # ------------------------------------------------------------------------------------ control surface

    def fail_next(
        self,
        method: str,
        code: int = 500,
        description: str = "Internal Server Error",
        retry_after: int | None = None,
        *,
        times: int = 1,
        after: int = 0,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """Make ``times`` calls to ``method`` fail with this error, after letting ``after`` calls through.

        Failures queue up per method: a second ``fail_next`` applies once the first is used up.
        ``parameters`` adds ResponseParameters, e.g. ``{"migrate_to_chat_id": -100123}``.
        """
        failure = _Failure(code, description, retry_after, parameters, times, after)
        self._failures.setdefault(method.lower(), []).append(failure)

    def fail_randomly(
        self,
        rate: float,
        *,
        methods: Iterable[str] = ("sendMessage",),
        modes: Iterable[str] = FAULT_MODES,
        seed: int = 0,
        delay: float = 6.0,
        retry_after: int = 1,
    ) -> None:
        """Make a ``rate`` share of calls to ``methods`` fail, each in one of ``modes`` picked at random.

        Modes are those of ``FAULT_MODES``; "timeout" answers after ``delay`` seconds (longer than the
        client waits), without doing the call. Seeded, so a run can be repeated. ``rate=0`` turns it off.
        ``fault_counts`` says how many of each were injected.
        """
        chosen = tuple(modes)
        unknown = set(chosen) - set(FAULT_MODES)
        if unknown or not chosen:
            raise ValueError(f"modes must be among {FAULT_MODES}, got {chosen}")
        if rate <= 0:
            self._random_faults = None
            return
        self._random_faults = _RandomFaults(
            rate=rate,
            methods=frozenset(m.lower() for m in methods),
            modes=chosen,
            rng=random.Random(seed),
            delay=delay,
            retry_after=retry_after,
        )

    @property
    def fault_counts(self) -> dict[str, int]:
        return dict(self._random_faults.injected) if self._random_faults is not None else {}

    def calls_to(self, method: str) -> list[ApiCall]:
        name = method.lower()
        return [c for c in self.calls if c.method.lower() == name]

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        # A bound for a loaded machine, not an expected delay: a call that comes returns at once.
        timeout: float = 30.0,  # noqa: ASYNC109 - the tests' familiar spelling; applied with wait_for
        *,
        since: int = 0,
    ) -> ApiCall:
        """The first call to ``method`` (from ``calls[since:]``) matching ``predicate``; waits for it.

        Already recorded calls count: pass ``since=len(api.calls)`` to wait only for new ones.
        """
        name = method.lower()

        def find() -> ApiCall | None:
            for call in self.calls[since:]:
                if call.method.lower() == name and (predicate is None or predicate(call)):
                    return call
            return None

        async def wait() -> ApiCall:
            async with self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = [c.params for c in self.calls_to(method)]
            raise AssertionError(f"no matching {method} call within {timeout}s; calls seen: {seen}") from None

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

    def sent_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to ``chat_id``, in order, as they are now (edits applied)."""
        return [self._messages[key] for key in self._sent.get(chat_id, [])]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        return self._messages.get((chat_id, message_id))

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._pending)

    def add_file(self, file_id: str, data: bytes, path: str | None = None) -> dict[str, Any]:
        """Make ``file_id`` known to getFile and downloadable; returns the File object."""
        stored = _StoredFile(
            file_id=file_id,
            file_unique_id=f"u{file_id}"[:32],
            path=path or f"documents/file_{next(self._file_ids)}",
            data=data,
        )
        self._files[file_id] = stored
        return self._file_object(stored)

    def add_chat(self, chat: Mapping[str, Any]) -> dict[str, Any]:
        """Register a chat (a dict shaped like Telegram's Chat); pushed messages do this themselves."""
        stored = dict(chat)
        self._chats[int(stored["id"])] = stored
        return stored

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

    def make_user(self, user: Mapping[str, Any] | None = None, *, default_id: int) -> dict[str, Any]:
        made: dict[str, Any] = {
            "id": default_id,
            "is_bot": False,
            "first_name": "Test",
            "last_name": "User",
            "username": f"user{default_id}".replace("-", "m"),
            "language_code": "en",
        }
        made.update(user or {})
        return {k: v for k, v in made.items() if v is not None}

    def _chat_for(
        self, chat_id: int, chat_type: str, user: Mapping[str, Any], title: str | None
    ) -> dict[str, Any]:
        if chat_id in self._chats and self._chats[chat_id].get("type") == chat_type:
            return self._chats[chat_id]
        if chat_type == "private":
            chat = {
                "id": chat_id,
                "type": "private",
                "first_name": user.get("first_name"),
                "last_name": user.get("last_name"),
                "username": user.get("username"),
            }
        else:
            chat = {"id": chat_id, "type": chat_type, "title": title or f"Group {chat_id}"}
        return self.add_chat({k: v for k, v in chat.items() if v is not None})

    async def push_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        user: Mapping[str, Any] | None = None,
        chat_type: str = "private",
        chat_title: str | None = None,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
        extra: Mapping[str, Any] | None = None,
        update_type: str = "message",
    ) -> dict[str, Any]:
        """Queue a message from a user, shaped as Telegram sends it; returns the update.

        ``user`` overrides fields of the default sender (in a private chat its id is the chat id), e.g.
        ``{"first_name": "Aigerim", "language_code": "ru"}``. ``extra`` is merged into the message, for
        stickers, photos, documents and the like. Commands (``/start``) and @mentions get their entities.
        """
        sender = self.make_user(user, default_id=chat_id if chat_type == "private" else 10_000 + abs(chat_id))
        chat = self._chat_for(chat_id, chat_type, sender, chat_title)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
        }
        if text is not None:
            message["text"] = text
            entities = _entities(text)
            if entities:
                message["entities"] = entities
        if caption is not None:
            message["caption"] = caption
            entities = _entities(caption, commands=False)
            if entities:
                message["caption_entities"] = entities
        if reply_to_message_id is not None:
            replied = self._messages.get((chat_id, reply_to_message_id))
            message["reply_to_message"] = replied or {
                "message_id": reply_to_message_id,
                "chat": chat,
                "date": int(time.time()),
            }
        message.update(extra or {})
        self._messages[(chat_id, message["message_id"])] = message
        return await self.push_update({update_type: message})

    async def push_edited_message(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        """Queue an ``edited_message`` update for a message pushed earlier."""
        original = self._messages.get((chat_id, message_id))
        if original is None:
            raise KeyError(f"no message {message_id} in chat {chat_id}")
        edited = {k: v for k, v in original.items() if k not in ("text", "entities", "caption")}
        edited["edit_date"] = int(time.time())
        if "caption" in original:
            edited["caption"] = text
        else:
            edited["text"] = text
            if entities := _entities(text):
                edited["entities"] = entities
        self._messages[(chat_id, message_id)] = edited
        return await self.push_update({"edited_message": edited})

    async def push_callback_query(
        self,
        chat_id: int,
        data: str,
        *,
        message_id: int | None = None,
        user: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a button press on a bot message (by default the last one the bot sent to ``chat_id``)."""
        if message_id is None:
            sent = self._sent.get(chat_id)
            if not sent:
                raise KeyError(f"the bot has sent nothing to chat {chat_id}")
            message_id = sent[-1][1]
        chat = self._chats.get(chat_id, {"id": chat_id, "type": "private", "first_name": "Test"})
        message = self._messages.get((chat_id, message_id)) or {
            "message_id": message_id,
            "chat": chat,
            "date": int(time.time()),
            "from": self.bot_user,
            "text": "",
        }
        default_id = chat_id if chat.get("type") == "private" else 10_000 + abs(chat_id)
        query = {
            "id": str(next(self._callback_ids)),
            "from": self.make_user(user, default_id=default_id),
            "message": message,
            "chat_instance": str(abs(chat_id) * 7919),
            "data": data,
        }
        return await self.push_update({"callback_query": query})

    # ---------------------------------------------------------------------------------------- HTTP layer

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw, params = await _read_params(request)
        if request.match_info["token"] != self.token:
            # Telegram answers 401 for a well-formed but wrong token; PTB raises InvalidToken.
            return self._record(method, params, raw, BotApiError(401, "Unauthorized"))
        name = method.lower()
        failure = self._take_failure(name)
        if failure is not None:
            return self._record(method, params, raw, failure)
        fault = self._random_fault(name)
        if fault in ("429", "500"):
            error = (
                BotApiError(429, "Too Many Requests: retry later", retry_after=self._faults_retry_after())
                if fault == "429"
                else BotApiError(500, "Internal Server Error")
            )
            return self._record(method, params, raw, error)
        if fault == "timeout":
            await asyncio.sleep(self._random_faults.delay if self._random_faults else 0)
            return self._record(method, params, raw, BotApiError(504, "Gateway Timeout"))
        if fault == "drop":
            return self._drop_connection(request)
        response = await self._call(method, name, params, raw)
        if fault == "drop_after":
            return self._drop_connection(request)
        return response

    async def _call(
        self, method: str, name: str, params: dict[str, Any], raw: dict[str, str]
    ) -> web.Response:
        impl = self.methods.get(name) or self._builtin.get(name)
        if impl is None:
            self.unknown_methods.append(method)
            error = BotApiError(400, f"Bot API stand-in does not implement {method}")
            return self._record(method, params, raw, error)
        try:
            result = await impl(params)
        except BotApiError as error:
            return self._record(method, params, raw, error)
        return self._record(method, params, raw, result)

    def _record(self, method: str, params: dict[str, Any], raw: dict[str, str], outcome: Any) -> web.Response:
        if isinstance(outcome, BotApiError):
            body: dict[str, Any] = {"ok": False, "error_code": outcome.code}
            body["description"] = outcome.description
            if outcome.parameters:
                body["parameters"] = outcome.parameters
            call = ApiCall(method, params, raw, ok=False, result=outcome.description)
            status = outcome.code
        else:
            body = {"ok": True, "result": outcome}
            call = ApiCall(method, params, raw, ok=True, result=outcome)
            status = 200
        self.calls.append(call)
        self._notify_soon()
        return web.json_response(body, status=status)

    def _random_fault(self, name: str) -> str | None:
        faults = self._random_faults
        if faults is None or name not in faults.methods or faults.rng.random() >= faults.rate:
            return None
        mode = faults.rng.choice(faults.modes)
        faults.injected[mode] = faults.injected.get(mode, 0) + 1
        return mode

    def _faults_retry_after(self) -> int:
        return self._random_faults.retry_after if self._random_faults is not None else 1

    @staticmethod
    def _drop_connection(request: web.Request) -> web.Response:
        """Close the client's connection without an answer (the client sees a protocol error)."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    def _notify_soon(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        # Waiters must be woken without making the HTTP answer wait on them.
        task = asyncio.get_running_loop().create_task(notify())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _take_failure(self, name: str) -> BotApiError | None:
        queue = self._failures.get(name)
        if not queue:
            return None
        failure = queue[0]
        if failure.skip > 0:
            failure.skip -= 1
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        return BotApiError(
            failure.code, failure.description, retry_after=failure.retry_after, parameters=failure.parameters
        )

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        path = request.match_info["path"]
        for stored in self._files.values():
            if stored.path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

    # ------------------------------------------------------------------------------------------- methods

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self.bot_user)

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

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _check_chat(self, chat_id: Any) -> int:
        if not isinstance(chat_id, int):
            raise BotApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked_chats:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._check_chat(params.get("chat_id"))
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_MESSAGE_LENGTH:
            raise BotApiError(400, "Bad Request: message is too long")
        chat = self._chats.get(chat_id) or self.add_chat(
            {"id": chat_id, "type": "private", "first_name": "-"}
        )
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": dict(self.bot_user),
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if isinstance(params.get("entities"), list):
            message["entities"] = params["entities"]
        if isinstance(params.get("reply_markup"), dict) and "inline_keyboard" in params["reply_markup"]:
            message["reply_markup"] = params["reply_markup"]
        reply_to = params.get("reply_to_message_id")
        if isinstance(params.get("reply_parameters"), dict):
            reply_to = params["reply_parameters"].get("message_id")
        if isinstance(reply_to, int) and (chat_id, reply_to) in self._messages:
            message["reply_to_message"] = self._messages[(chat_id, reply_to)]
        self._messages[(chat_id, message["message_id"])] = message
        self._sent.setdefault(chat_id, []).append((chat_id, message["message_id"]))
        return message

    def _editable(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if params.get("inline_message_id"):
            return None
        chat_id = self._check_chat(params.get("chat_id"))
        message = self._messages.get((chat_id, params.get("message_id")))  # type: ignore[arg-type]
        if message is None or message.get("from", {}).get("id") != self.bot_user["id"]:
            raise BotApiError(400, "Bad Request: message to edit not found")
        return message

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        message = self._editable(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_MESSAGE_LENGTH:
            raise BotApiError(400, "Bad Request: message is too long")
        if message is None:
            return True
        markup = params.get("reply_markup")
        if message.get("text") == text and message.get("reply_markup") == markup:
            raise BotApiError(400, _NOT_MODIFIED)
        message["text"] = text
        message["edit_date"] = int(time.time())
        if isinstance(params.get("entities"), list):
            message["entities"] = params["entities"]
        else:
            message.pop("entities", None)
        if isinstance(markup, dict):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        message = self._editable(params)
        if message is None:
            return True
        markup = params.get("reply_markup")
        if message.get("reply_markup") == markup:
            raise BotApiError(400, _NOT_MODIFIED)
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise BotApiError(400, "Bad Request: can't parse commands JSON object")
        self.commands = commands
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.commands)

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    def _file_object(self, stored: _StoredFile) -> dict[str, Any]:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.path,
        }

    async def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise BotApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_FILE_DOWNLOAD_SIZE:
            raise BotApiError(400, "Bad Request: file is too big")
        return self._file_object(stored)


_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


def _entities(text: str, *, commands: bool = True) -> list[dict[str, Any]]:
    """The bot_command and mention entities Telegram would attach (offsets in UTF-16 units)."""
    found: list[dict[str, Any]] = []
    if commands:
        match = _COMMAND_RE.match(text)
        if match:
            found.append({"type": "bot_command", "offset": 0, "length": utf16_len(match.group())})
    for match in _MENTION_RE.finditer(text):
        if match.start() > 0 and text[match.start() - 1] not in " \n\t(":
            continue
        found.append(
            {
                "type": "mention",
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group()),
            }
        )
    return found


def _decode(key: str, value: str) -> Any:
    if key in _JSON_KEYS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in _INT_KEYS:
        try:
            return int(value)
        except ValueError:
            return value  # e.g. chat_id "@channelusername"
    if key in _BOOL_KEYS and value in ("true", "false", "True", "False"):
        return value.lower() == "true"
    return value


async def _read_params(request: web.Request) -> tuple[dict[str, str], dict[str, Any]]:
    """Form-encoded, multipart, JSON or query-string parameters → (raw strings, decoded per key)."""
    raw: dict[str, str] = {}
    params: dict[str, Any] = {}
    items: Iterable[tuple[str, Any]]
    if request.content_type == "application/json":
        body = await request.json() if request.can_read_body else {}
        for key, value in (body or {}).items():
            params[key] = value
            raw[key] = value if isinstance(value, str) else json.dumps(value)
        return raw, params
    if request.method == "POST" and request.can_read_body:
        items = (await request.post()).items()
    else:
        items = request.query.items()
    for key, value in items:
        if isinstance(value, web.FileField):
            # An uploaded file: kept as bytes so a custom method can inspect it.
            data = value.file.read()
            raw[key] = f"<file {value.filename} {len(data)} bytes>"
            params[key] = {"filename": value.filename, "content_type": value.content_type, "data": data}
            continue
        text = value if isinstance(value, str) else bytes(value).decode()
        raw[key] = text
        params[key] = _decode(key, text)
    return raw, params
