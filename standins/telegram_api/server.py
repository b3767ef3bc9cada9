"""The stand-in's server: lifecycle, the HTTP routes, and the table of Bot API methods it answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from standins.telegram_api.chats import ChatMessages
from standins.telegram_api.faults import FAULT_MODES, FaultPlan
from standins.telegram_api.files import FileStore
from standins.telegram_api.wire import BotApiError, answer, read_params

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "1234567890:STAND-IN-TOKEN-for-local-tests-only"

Method = Callable[[dict[str, Any]], Awaitable[Any]]


class TelegramApiStandIn(ChatMessages):
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
        bot_id = token.split(":", 1)[0]
        super().__init__(
            {
                "id": int(bot_id) if bot_id.isdigit() else 1234567890,
                "is_bot": True,
                "first_name": bot_first_name,
                "username": bot_username,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )
        self.token = token
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        # Replace or add a method: ``api.methods["sendPhoto"] = coroutine(params) -> result``.
        # Keys are lower-case (Telegram's method names are case-insensitive).
        self.methods: dict[str, Method] = {}
        self.unknown_methods: list[str] = []
        self.commands: list[dict[str, Any]] = []
        self._faults = FaultPlan()
        self._files = FileStore()
        self._runner: web.AppRunner | None = None
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
            "getfile": self._files.get_file,
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
        await self._stop_feed()
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

    # ------------------------------------------------------------------------ faults and files to serve

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
        self._faults.fail_next(
            method, code, description, retry_after, times=times, after=after, parameters=parameters
        )

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
        self._faults.fail_randomly(
            rate, methods=methods, modes=modes, seed=seed, delay=delay, retry_after=retry_after
        )

    @property
    def fault_counts(self) -> dict[str, int]:
        return self._faults.counts

    def add_file(self, file_id: str, data: bytes, path: str | None = None) -> dict[str, Any]:
        """Make ``file_id`` known to getFile and downloadable; returns the File object."""
        return self._files.add(file_id, data, path)

    # ---------------------------------------------------------------------------------------- HTTP layer

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw, params = await read_params(request)
        if request.match_info["token"] != self.token:
            # Telegram answers 401 for a well-formed but wrong token; PTB raises InvalidToken.
            return self._record(method, params, raw, BotApiError(401, "Unauthorized"))
        name = method.lower()
        failure = self._faults.take_failure(name)
        if failure is not None:
            return self._record(method, params, raw, failure)
        fault = self._faults.random_fault(name)
        if fault in ("429", "500"):
            error = (
                BotApiError(429, "Too Many Requests: retry later", retry_after=self._faults.retry_after)
                if fault == "429"
                else BotApiError(500, "Internal Server Error")
            )
            return self._record(method, params, raw, error)
        if fault == "timeout":
            await asyncio.sleep(self._faults.delay)
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
        call, response = answer(method, params, raw, outcome)
        self._append(call)
        return response

    @staticmethod
    def _drop_connection(request: web.Request) -> web.Response:
        """Close the client's connection without an answer (the client sees a protocol error)."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        data = self._files.data_at(request.match_info["path"])
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    # ------------------------------------------------------------------- methods about the bot itself

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self.bot_user)

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
