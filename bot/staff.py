"""Handlers for staff: card buttons, replies to cards, and /reply /note /queue /mine /ticket.

Only staff may act (enabled staff accounts' Telegram ids, HELPDESK_STAFF_TELEGRAM_IDS as a seed: see
helpdesk/usecases/staff_directory.py), and only in a staff place: the staff group, or a staff member's
own private chat with the bot. Anyone else, or staff anywhere else (a requesters' group), is refused with
a short answer that shows nothing of a ticket, and the attempt is logged (and audited on the ticket it was
about). ``_admit`` is that rule, and every handler goes through it. Every action is a desk use-case; the
card itself is refreshed by the desk through the outbox, so the bot only draws the transient pickers
(reassign, status, reclassify) on the card.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from telegram import Chat, InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from helpdesk import lifecycle
from helpdesk.desk import Desk
from helpdesk.references import find_reference
from helpdesk.rendering import render
from helpdesk.usecases.assign import assign
from helpdesk.usecases.cards import button_labels, card_markup, refresh_card, staff_language
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.listing import TicketFilter, list_tickets, show_ticket
from helpdesk.usecases.note import add_note
from helpdesk.usecases.referrals import TOP_EXPERTS_OFFERED, refer
from helpdesk.usecases.refusals import record_refusal
from helpdesk.usecases.reply import reply
from helpdesk.usecases.staff_directory import staff_telegram_ids
from helpdesk.usecases.status import close, set_status

log = logging.getLogger(__name__)

STAFF_COMMANDS = ("reply", "note", "queue", "mine", "ticket")
TARGETS = range(1, 24)
CORE_FUNCTIONS = range(1, 12)
USAGE = {
    "reply": "/reply TSCC-2026-0042 text",
    "note": "/note TSCC-2026-0042 text",
    "ticket": "/ticket TSCC-2026-0042",
}


def staff_name(user: User) -> str:
    """How a staff member appears as an assignee: their @username, stable across name changes."""
    return f"@{user.username}" if user.username else f"{user.full_name} ({user.id})"


# Staff pick targets in order: the first one is the subject of the request, so the button data keeps the
# order ("3.1.14"), and the picks are capped so the data stays within Telegram's 64 bytes.
MAX_TARGETS, MAX_CORE_FUNCTIONS = 5, 3


def _mask(numbers: list[int]) -> str:
    return ".".join(map(str, numbers))


def _unmask(value: str, allowed: range) -> list[int]:
    numbers = [int(part) for part in value.split(".") if part.isdigit()]
    return list(dict.fromkeys(n for n in numbers if n in allowed))


class StaffHandlers:
    def __init__(self, desk: Desk, staff_chat_id: int | None, staff_ids: frozenset[int]) -> None:
        self._desk = desk
        self._staff_chat_id = staff_chat_id
        self._staff_ids = staff_ids
        # Names of staff seen so far, for the reassign picker (Telegram offers no lookup by id for bots).
        self._names: dict[int, str] = {}

    def register(self, app: Application) -> None:  # type: ignore[type-arg]
        app.add_handler(
            CommandHandler(list(STAFF_COMMANDS), self.command, filters=filters.UpdateType.MESSAGE)
        )
        app.add_handler(CallbackQueryHandler(self.button, pattern=r"^(st|rc):"))
        if self._staff_chat_id is not None:
            in_staff_chat = filters.Chat(self._staff_chat_id) & filters.UpdateType.MESSAGE
            app.add_handler(
                MessageHandler(in_staff_chat & filters.REPLY & ~filters.COMMAND, self.reply_to_card)
            )

    def _text(self, template: str, **context: object) -> str:
        return render(f"bot/{template}.{{lang}}.txt.j2", staff_language(), **context).strip()

    async def _staff_ids_now(self) -> frozenset[int]:
        """Staff accounts' Telegram ids, with HELPDESK_STAFF_TELEGRAM_IDS as the seed (staff_directory)."""
        async with self._desk.sessions() as session:
            return await staff_telegram_ids(session, self._staff_ids)

    async def _is_staff(self, user: User | None) -> bool:
        if user is None or user.id not in await self._staff_ids_now():
            return False
        self._names[user.id] = staff_name(user)
        return True

    def _actor(self, user: User) -> str:
        return f"telegram:{staff_name(user)}"

    def _in_staff_place(self, chat: Chat | None, user: User) -> bool:
        """Where only staff read: the staff group, or the staff member's own private chat with the bot."""
        if chat is None:
            return False
        if self._staff_chat_id is not None and chat.id == self._staff_chat_id:
            return True
        return chat.type == ChatType.PRIVATE and chat.id == user.id

    async def _admit(
        self, user: User | None, chat: Chat | None, reference: str | None, attempted: str
    ) -> str | None:
        """None when ``user`` may act in ``chat``; otherwise the refusal to answer (without any ticket
        content), after the attempt is logged and audited."""
        actor = f"telegram:{user.id}" if user else "telegram:unknown"
        if not await self._is_staff(user):
            await record_refusal(self._desk, reference, actor, attempted)
            return self._text("staff_refused")
        assert user is not None
        if not self._in_staff_place(chat, user):
            # Staff in a requesters' group: whatever the bot answered would be read by the requesters.
            where = f"in a {chat.type} chat" if chat is not None else "in an unknown chat"
            await record_refusal(self._desk, reference, actor, attempted, reason=f"not a staff chat: {where}")
            return self._text("staff_wrong_place")
        return None

    # ----------------------------------------------------------------------------------------- commands

    async def command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or not message.text:
            return
        name = message.text.split()[0][1:].split("@")[0].lower()
        args = context.args or []
        refusal = await self._admit(user, message.chat, args[0] if args else None, f"/{name}")
        if refusal is not None:
            await message.reply_text(refusal)
            return
        assert user is not None
        try:
            await self._run(message, user, name, args)
        except DeskError as exc:
            await message.reply_text(self._text("staff_error", error=str(exc)))

    async def _run(self, message: Message, user: User, name: str, args: list[str]) -> None:
        if name in ("queue", "mine"):
            where = TicketFilter(
                status="active", assignee="none" if name == "queue" else staff_name(user), limit=30
            )
            tickets = await list_tickets(self._desk, where)
            titles = _titles()
            await message.reply_text(self._text("staff_queue", title=titles[name], tickets=tickets))
            return
        reference = find_reference(args[0]) if args else None
        text = _after_reference(message.text or "")
        if reference is None or (name != "ticket" and not text):
            await message.reply_text(self._text("staff_usage", usage=USAGE[name]))
            return
        if name == "ticket":
            ticket = await show_ticket(self._desk, reference)
            await message.reply_text(
                self._text("staff_ticket", t=ticket),
                reply_markup=InlineKeyboardMarkup.de_json(
                    card_markup(reference, ticket["status"]), message.get_bot()
                ),
            )
        elif name == "reply":
            await self._reply(message, user, reference, text)
        else:
            await add_note(self._desk, reference, text, actor=self._actor(user))
            await message.reply_text(self._text("staff_done", action="noted", reference=reference))

    async def _reply(self, message: Message, user: User, reference: str, text: str) -> None:
        ticket = await reply(self._desk, reference, text, actor=self._actor(user))
        await message.reply_text(
            self._text("staff_done", action="replied", reference=ticket.reference, channel=ticket.channel)
        )

    async def reply_to_card(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A staff member answers a card (or any bot message naming a ticket): relay it to the requester."""
        message, user = update.effective_message, update.effective_user
        if message is None or message.reply_to_message is None:
            return
        replied = message.reply_to_message
        if replied.from_user is None or replied.from_user.id != context.bot.id:
            return  # staff talking among themselves
        reference = find_reference(replied.text or replied.caption)
        text = message.text or message.caption or ""
        if reference is None or not text.strip():
            return
        refusal = await self._admit(user, message.chat, reference, "reply to card")
        if refusal is not None:
            await message.reply_text(refusal)
            return
        assert user is not None
        try:
            await self._reply(message, user, reference, text)
        except DeskError as exc:
            await message.reply_text(self._text("staff_error", error=str(exc)))

    # ------------------------------------------------------------------------------------------ buttons

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not query.data:
            return
        parts = query.data.split(":")
        # st:<op>:<ref>[:arg], rc:<ref>:<targets>:<core functions>:<op>
        at = 1 if parts[0] == "rc" else 2
        reference = parts[at] if len(parts) > at else None
        # A picker drawn on a card is read by everyone in the card's chat.
        chat = query.message.chat if query.message is not None else None
        refusal = await self._admit(query.from_user, chat, reference, f"button {parts[0]}:{parts[1]}")
        if refusal is not None:
            await query.answer(refusal, show_alert=True)
            return
        try:
            answer = await self._press(query.from_user, parts)
        except DeskError as exc:
            await query.answer(self._text("staff_error", error=str(exc)), show_alert=True)
            return
        except (IndexError, ValueError):
            # Malformed button data (forged, or from an older version of the bot): nothing to do.
            log.info("staff button with malformed data %r ignored", query.data)
            await query.answer()
            return
        if isinstance(answer, dict):
            await query.answer()
            try:
                await query.edit_message_reply_markup(InlineKeyboardMarkup.de_json(answer, context.bot))
            except BadRequest as exc:  # the card is gone (deleted, too old to edit): nothing to draw on
                log.info("could not draw the picker for %s: %s", query.data, exc)
        else:
            await query.answer(answer)

    async def _press(self, user: User, parts: list[str]) -> str | dict[str, Any] | None:
        """Do what a button says; returns a short answer, or the picker to draw on the card."""
        label = button_labels(staff_language())
        if parts[0] == "rc":
            return await self._reclassify(user, parts)
        op, reference = parts[1], parts[2]
        arg = parts[3] if len(parts) > 3 else None
        actor = self._actor(user)
        back = [{"text": label["back"], "callback_data": f"st:back:{reference}"}]
        if op == "me":
            await assign(self._desk, reference, staff_name(user), actor=actor)
            return self._text("staff_done", action="assigned", reference=reference, who=staff_name(user))
        if op == "who":
            known = {i: self._names.get(i, f"tg:{i}") for i in sorted(await self._staff_ids_now())}
            rows = [[{"text": name, "callback_data": f"st:to:{reference}:{i}"}] for i, name in known.items()]
            rows.append([{"text": label["unassign"], "callback_data": f"st:to:{reference}:0"}])
            return {"inline_keyboard": [*rows, back]}
        if op == "to" and arg is not None:
            who = None if arg == "0" else self._names.get(int(arg), f"tg:{arg}")
            await assign(self._desk, reference, who, actor=actor)
            return self._text("staff_done", action="assigned", reference=reference, who=who)
        if op == "status":
            row = [
                {"text": label[f"status_{s}"], "callback_data": f"st:set:{reference}:{s}"}
                for s in lifecycle.SETTABLE
            ]
            return {"inline_keyboard": [row[:2], row[2:], back]}
        if op == "set" and arg is not None:
            await set_status(self._desk, reference, arg, actor=actor)
            return self._text("staff_done", action="status", reference=reference, status=arg)
        if op == "close":
            await close(self._desk, reference, actor=actor)
            return self._text(
                "staff_done", action="status", reference=reference, status=lifecycle.Status.CLOSED.value
            )
        if op == "rc":
            ticket = await show_ticket(self._desk, reference)
            classification = ticket.get("classification") or {}
            targets = [int(t["target"]) for t in classification.get("targets") or []][:3]
            functions = [int(c["core_function"]) for c in classification.get("core_functions") or []][:2]
            return _picker(reference, targets, functions, "T")
        if op == "ref":
            # The top matched experts, by their place in the ticket's matches (ids may be long).
            matched = ((await show_ticket(self._desk, reference)).get("matches") or {}).get("experts") or []
            rows = [
                [{"text": f"{e.get('name') or e.get('expert')}", "callback_data": f"st:rx:{reference}:{i}"}]
                for i, e in enumerate(matched[:TOP_EXPERTS_OFFERED])
            ]
            return {"inline_keyboard": [*rows, back]}
        if op == "rx" and arg is not None:
            matched = ((await show_ticket(self._desk, reference)).get("matches") or {}).get("experts") or []
            expert_id = str(matched[int(arg)]["expert"])
            await refer(self._desk, reference, [expert_id], message=None, actor=actor)
            return self._text("staff_done", action="referred", reference=reference, who=expert_id)
        if op == "back":
            await refresh_card(self._desk, reference)
            return None
        return None

    async def _reclassify(self, user: User, parts: list[str]) -> str | dict[str, Any] | None:
        # rc:<ref>:<targets mask>:<core functions mask>:<op>; the selection lives in the button data, so a
        # half-done choice survives a restart of the bot.
        _, reference, tmask, cmask, op = parts[:5]
        targets, functions = _unmask(tmask, TARGETS), _unmask(cmask, CORE_FUNCTIONS)
        if op == "s":
            from helpdesk.usecases.reclassify import reclassify

            await reclassify(self._desk, reference, targets, functions, actor=self._actor(user))
            return self._text("staff_done", action="reclassified", reference=reference)
        page = op[0]
        if op[1:].isdigit():
            number = int(op[1:])
            chosen = targets if page == "t" else functions
            if number in chosen:
                chosen.remove(number)
            elif len(chosen) < (MAX_TARGETS if page == "t" else MAX_CORE_FUNCTIONS):
                chosen.append(number)
        return _picker(reference, targets, functions, page.upper())


def _picker(reference: str, targets: list[int], functions: list[int], page: str) -> dict[str, Any]:
    label = button_labels(staff_language())
    state = f"rc:{reference}:{_mask(targets)}:{_mask(functions)}"
    if page == "T":
        numbers, chosen, prefix = TARGETS, targets, "t"
        switch = {"text": label["functions"] + " »", "callback_data": f"{state}:C"}
    else:
        numbers, chosen, prefix = CORE_FUNCTIONS, functions, "c"
        switch = {"text": "« " + label["targets"], "callback_data": f"{state}:T"}
    buttons = [{"text": _mark(n, chosen), "callback_data": f"{state}:{prefix}{n}"} for n in numbers]
    rows = [buttons[i : i + 6] for i in range(0, len(buttons), 6)]
    rows.append([switch, {"text": label["save"], "callback_data": f"{state}:s"}])
    rows.append([{"text": label["back"], "callback_data": f"st:back:{reference}"}])
    return {"inline_keyboard": rows}


def _mark(number: int, chosen: list[int]) -> str:
    if number not in chosen:
        return str(number)
    return f"★{number}" if chosen[0] == number else f"✓{number}"


def _after_reference(text: str) -> str:
    """The text after ``/command REF``, line breaks kept."""
    match = re.match(r"^/\S+\s+\S+[ \t]*\n?", text)
    return text[match.end() :].strip() if match else ""


def _titles() -> dict[str, str]:
    titles: dict[str, str] = {}
    for line in render("bot/staff_titles.{lang}.txt.j2", staff_language()).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            titles[key.strip()] = value.strip()
    return titles
