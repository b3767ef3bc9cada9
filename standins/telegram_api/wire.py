"""The Bot API's HTTP wire format: how parameters arrive, how answers and errors go back, what was recorded.

Every form field arrives as a string, so each key is decoded by name, as Telegram does per method.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

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


def answer(
    method: str, params: dict[str, Any], raw: dict[str, str], outcome: Any
) -> tuple[ApiCall, web.Response]:
    """The record of a call and the HTTP answer for its outcome (a result, or a BotApiError)."""
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
    return call, web.json_response(body, status=status)


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


async def read_params(request: web.Request) -> tuple[dict[str, str], dict[str, Any]]:
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
