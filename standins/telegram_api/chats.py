"""Chats and their messages: what users send (pushed as updates), what the bot sends and edits."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

from standins.telegram_api.text import MAX_MESSAGE_LENGTH, entities, utf16_len
from standins.telegram_api.updates import UpdateFeed
from standins.telegram_api.wire import BotApiError

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


class ChatMessages(UpdateFeed):
    def __init__(self, bot_user: dict[str, Any]) -> None:
        super().__init__()
        self.bot_user = bot_user
        # Chats whose user "blocked the bot": sending there answers 403 like Telegram does.
        self.blocked_chats: set[int] = set()
        self._callback_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._sent: dict[int, list[tuple[int, int]]] = {}

    # -------------------------------------------------------------------- what tests and the demo see

    def sent_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to ``chat_id``, in order, as they are now (edits applied)."""
        return [self._messages[key] for key in self._sent.get(chat_id, [])]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        return self._messages.get((chat_id, message_id))

    def add_chat(self, chat: Mapping[str, Any]) -> dict[str, Any]:
        """Register a chat (a dict shaped like Telegram's Chat); pushed messages do this themselves."""
        stored = dict(chat)
        self._chats[int(stored["id"])] = stored
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

    # ---------------------------------------------------------------------------- what users send

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
            found = entities(text)
            if found:
                message["entities"] = found
        if caption is not None:
            message["caption"] = caption
            found = entities(caption, commands=False)
            if found:
                message["caption_entities"] = found
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
            if found := entities(text):
                edited["entities"] = found
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

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    # ------------------------------------------------------------------- what the bot sends (methods)

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
