"""Handlers for requesters: private chats, and focal points' groups where the bot is addressed.

Messages become InboundMessages handed to ``on_inbound`` (the desk answers through its outbox): it stores
them, keeps them on disk while the database is away, or asks which ticket they continue (the question and
the messages it holds live in the database: helpdesk.usecases.followup_question; the bot only renders it). The
bot itself answers what needs no ticket: /start, /lang, /status, the follow-up question, unsupported content.
Everything that reads or changes the desk goes through ``helpdesk.usecases``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from telegram import (
    CallbackQuery,
    ChatMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
    User,
)
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.composer import CONSENT, EXPERT
from bot.inbound import download_attachments, has_files, inbound_from_message, message_text, without_mention
from helpdesk.db.transient import retrying
from helpdesk.desk import Desk
from helpdesk.language import detect_reply_language
from helpdesk.messages import InboundMessage, Sender
from helpdesk.references import REFERENCE_RE, find_reference
from helpdesk.rendering import render
from helpdesk.safe_intake import TAKE_RETRY_DELAYS
from helpdesk.usecases import followup_question, introductions, referral_links, self_service
from helpdesk.usecases.cards import button_labels
from helpdesk.usecases.errors import DeskError, InvalidTransition
from helpdesk.usecases.followup_question import Asked
from knowledge.models import PARTY_CODES

T = TypeVar("T")
log = logging.getLogger(__name__)

InboundHandler = Callable[[InboundMessage], Awaitable[object]]


class Addressed(filters.MessageFilter):
    """In a group: the message mentions the bot or answers one of its messages."""

    def filter(self, message: Message) -> bool:
        bot = message.get_bot()
        username = (bot.username or "").lower()
        reply = message.reply_to_message
        if reply is not None and reply.from_user is not None and reply.from_user.id == bot.id:
            return True
        entities = message.parse_entities() or message.parse_caption_entities()
        for entity, value in entities.items():
            if entity.type == MessageEntity.MENTION and value[1:].lower() == username:
                return True
            if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot.id:
                return True
        return False


CONTENT = (
    filters.TEXT
    | filters.CAPTION
    | filters.PHOTO
    | filters.Document.ALL
    | filters.VOICE
    | filters.AUDIO
    | filters.VIDEO
    | filters.VIDEO_NOTE
)


def sender_of(user: User, chat_id: int) -> Sender:
    return Sender(
        name=user.full_name, telegram_user_id=user.id, telegram_chat_id=chat_id, language=user.language_code
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


class RequesterHandlers:
    def __init__(self, on_inbound: InboundHandler, desk: Desk | None, staff_chat_id: int | None) -> None:
        self._on_inbound = on_inbound
        self._desk = desk
        self._staff_chat_id = staff_chat_id
        self._languages: dict[int, str] = {}

    def register(self, app: Application) -> None:  # type: ignore[type-arg]
        not_staff = ~filters.Chat(self._staff_chat_id) if self._staff_chat_id is not None else filters.ALL
        private = filters.ChatType.PRIVATE
        groups = filters.ChatType.GROUPS & not_staff
        where = private | groups
        new = filters.UpdateType.MESSAGE
        # Order matters: within one group the first matching handler wins.
        app.add_handler(CommandHandler("start", self.start, filters=where & new))
        app.add_handler(CommandHandler("lang", self.lang, filters=where & new))
        app.add_handler(CommandHandler("new", self.new, filters=where & new))
        app.add_handler(CommandHandler("status", self.status, filters=where & new))
        app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self.migrated))
        app.add_handler(
            CallbackQueryHandler(self.button, pattern=rf"^(lang|party|pick|tk|{CONSENT}|{EXPERT}):")
        )
        app.add_handler(ChatMemberHandler(self.membership, ChatMemberHandler.MY_CHAT_MEMBER))

    def register_fallbacks(self, app: Application, private: Any, groups: Any) -> None:  # type: ignore[type-arg]
        """Registered after the staff commands, which would otherwise count as unknown commands."""
        new = filters.UpdateType.MESSAGE
        addressed = groups & Addressed()
        app.add_handler(MessageHandler(private & new & filters.COMMAND, self.unknown_command))
        app.add_handler(
            MessageHandler((private | addressed) & new & ~filters.COMMAND & CONTENT, self.message)
        )
        app.add_handler(
            MessageHandler((private | addressed) & new & ~filters.StatusUpdate.ALL, self.unsupported)
        )
        app.add_handler(MessageHandler((private | groups) & filters.UpdateType.EDITED_MESSAGE, self.edited))
        # A button nobody handles (from an older version, or forged) is still answered, so the client
        # does not show a spinner for ever.
        app.add_handler(CallbackQueryHandler(self.unknown_button))

    # ------------------------------------------------------------------------------------------ helpers

    def language(self, user: User | None) -> str:
        if user is None:
            return "ru"
        return self._languages.get(user.id) or detect_reply_language("", user.language_code)

    def text(self, template: str, user: User | None, **context: object) -> str:
        return render(f"bot/{template}.{{lang}}.txt.j2", self.language(user), **context).strip()

    def _language_markup(self) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("English", callback_data="lang:en"),
                    InlineKeyboardButton("Русский", callback_data="lang:ru"),
                ]
            ]
        )

    def _party_markup(self, language: str) -> InlineKeyboardMarkup:
        names = _party_names(language)
        codes = list(PARTY_CODES)
        rows = [
            [InlineKeyboardButton(names.get(c, c), callback_data=f"party:{c}") for c in codes[i : i + 3]]
            for i in range(0, len(codes), 3)
        ]
        return InlineKeyboardMarkup(rows)

    # ----------------------------------------------------------------------------------------- commands

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        if message.chat.type != "private":
            await message.reply_text(self.text("group_hello", user, bot=context.bot.username))
            return
        party = None
        if self._desk is not None:
            profile = await self_service.profile(self._desk, sender_of(user, message.chat.id))
            if profile.language_chosen:
                self._languages[user.id] = profile.language
            party = profile.party
        await message.reply_text(
            self.text("start", user, name=user.first_name), reply_markup=self._language_markup()
        )
        if self._desk is not None and party is None:
            await message.reply_text(
                self.text("party_prompt", user), reply_markup=self._party_markup(self.language(user))
            )

    async def lang(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None:
            await message.reply_text(
                self.text("lang_prompt", update.effective_user), reply_markup=self._language_markup()
            )

    async def new(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        rest = " ".join(context.args or []).strip()
        if rest or has_files(message):
            await self._take_message(message, text=rest, force_new=True)
            return
        if self._desk is not None:
            desk, chat_id = self._desk, message.chat.id
            try:
                await retrying(
                    lambda: followup_question.choose_new(desk, user.id, chat_id),
                    TAKE_RETRY_DELAYS,
                    what=f"/new in chat {chat_id}",
                )
            except Exception:
                log.exception("could not keep /new of user %s in chat %s", user.id, chat_id)
                await message.reply_text(self.text("failed", user))
                return
        await message.reply_text(self.text("new_prompt", user))

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        tickets = await self_service.own_tickets(self._desk, user.id) if self._desk is not None else []
        rows = [
            [InlineKeyboardButton(f"{t.reference} · {t.status}", callback_data=f"tk:{t.reference}")]
            for t in tickets
        ]
        await message.reply_text(
            self.text("status_list", user, tickets=[_brief(t) for t in tickets]),
            reply_markup=InlineKeyboardMarkup(rows) if rows else None,
        )

    async def unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        # Echo a sane prefix only: "/x" followed by 4,000 letters would make the answer too long to send.
        # A command mark can cover blank text ("\r"): there is no word to echo then.
        words = message.text.split()
        command = words[0].split("@")[0][:64] if words else "/"
        await message.reply_text(self.text("unknown_command", update.effective_user, command=command))

    async def unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None:
            await message.reply_text(self.text("unsupported", update.effective_user))

    # ----------------------------------------------------------------------------------------- messages

    async def message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        text = without_mention(message_text(message), context.bot.username)
        if self._desk is not None and message.from_user is not None and _only_reference(text):
            await self._summary(message, message.from_user, text)
            return
        await self._take_message(message, text=text)

    async def _take_message(self, message: Message, *, text: str, force_new: bool = False) -> None:
        user = message.from_user
        try:
            downloads = await download_attachments(message)
        except Exception:
            log.exception("could not download the files of Telegram message %s", message.message_id)
            await message.reply_text(self.text("failed", user))
            return
        if downloads.too_big:
            await message.reply_text(
                self.text(
                    "too_big",
                    user,
                    filename=", ".join(downloads.too_big),
                    kept=bool(text.strip() or downloads.attachments),
                )
            )
            if not text.strip() and not downloads.attachments:
                return
        inbound = inbound_from_message(
            message, text=text, attachments=tuple(downloads.attachments), force_new=force_new
        )
        outcome = await self._take(inbound, message)
        if isinstance(outcome, Asked):
            await self._ask_which(message, outcome.token, outcome.choices)

    async def _ask_which(self, message: Message, token: str, choices: list[self_service.TicketBrief]) -> None:
        label = button_labels(self.language(message.from_user))
        rows = [[InlineKeyboardButton(label["new_request"], callback_data=f"pick:{token}:new")]]
        rows += [
            [
                InlineKeyboardButton(
                    f"{t.reference}: {t.subject[:40]}", callback_data=f"pick:{token}:{t.reference}"
                )
            ]
            for t in choices
        ]
        await message.reply_text(
            self.text("choose_ticket", message.from_user, tickets=[_brief(t) for t in choices]),
            reply_markup=InlineKeyboardMarkup(rows),
        )

    async def _take(self, inbound: InboundMessage, message: Message | None) -> object:
        """Hand ``inbound`` to the desk (one retried unit, kept on disk while the database is away).

        Returns what the desk answered (``Asked`` means nothing was stored yet), or None when it failed
        and the requester was told.
        """
        try:
            return await self._on_inbound(inbound)
        except Exception:
            # PTB has already confirmed this update to Telegram: unless the requester hears that it
            # failed, the message is lost without a trace on their side.
            log.exception("The desk failed to take Telegram message %s", inbound.channel_message_id)
            if message is not None:
                await message.reply_text(self.text("failed", message.from_user))
            return None

    async def _summary(self, message: Message, user: User, text: str) -> None:
        assert self._desk is not None
        reference = find_reference(text) or text
        brief = await self_service.own_ticket(self._desk, user.id, reference)
        if brief is None:
            await message.reply_text(self.text("ticket_not_found", user, reference=reference))
            return
        await message.reply_text(self.text("ticket_summary", user, **_brief(brief)))

    async def edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.edited_message
        if message is None or self._desk is None or message.from_user is None:
            return
        text = without_mention(message_text(message), context.bot.username)
        await self_service.edit_message(
            self._desk,
            "telegram",
            f"{message.chat.id}:{message.message_id}",
            text,
            actor=f"telegram:{message.from_user.id}",
        )

    async def migrated(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.migrate_to_chat_id is None or self._desk is None:
            return
        moved = await self_service.chat_migrated(self._desk, message.chat.id, message.migrate_to_chat_id)
        log.info(
            "group %s became supergroup %s; %s tickets follow",
            message.chat.id,
            message.migrate_to_chat_id,
            moved,
        )

    async def membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is None:
            return
        chat, user = change.chat, change.from_user
        was, now = change.old_chat_member.status, change.new_chat_member.status
        if chat.type == "private":
            if self._desk is not None and (now == ChatMember.BANNED) != (was == ChatMember.BANNED):
                # The requester blocked (or unblocked) the bot: staff must know answers cannot reach them.
                await self_service.requester_blocked(self._desk, user.id, blocked=now == ChatMember.BANNED)
            return
        present = (ChatMember.MEMBER, ChatMember.ADMINISTRATOR)
        if now in present and was not in present:
            log.info("added to %s %s (%s)", chat.type, chat.id, chat.title)
            if chat.id != self._staff_chat_id:
                await context.bot.send_message(
                    chat.id, self.text("group_hello", user, bot=context.bot.username)
                )
        elif now not in present and was in present:
            log.info("removed from %s %s (%s)", chat.type, chat.id, chat.title)

    # ------------------------------------------------------------------------------------------ buttons

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.data is None:
            return
        kind, _, value = query.data.partition(":")
        user = query.from_user
        chat_id = query.message.chat.id if query.message is not None else user.id
        if self._desk is None:
            await query.answer()
            return
        try:
            await self._press(update, query, chat_id, kind, value)
        except DeskError:
            # Button data is the client's to forge (``lang:xx``, ``party:ZZ``): refuse, do not fail.
            log.info("Telegram user %s pressed an invalid button %r", user.id, query.data)
            await query.answer()
        except BadRequest as exc:  # the message with the button is gone or cannot be edited any more
            log.info("button %r of Telegram user %s: %s", query.data, user.id, exc)

    async def unknown_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.callback_query is not None:
            await update.callback_query.answer()

    async def _press(self, update: Update, query: CallbackQuery, chat_id: int, kind: str, value: str) -> None:
        assert self._desk is not None
        user = query.from_user
        if kind == "lang":
            profile = await self_service.set_language(self._desk, sender_of(user, chat_id), value)
            self._languages[user.id] = profile.language
            await query.answer()
            await query.edit_message_text(self.text("lang_set", user))
        elif kind == "party":
            await self_service.set_party(self._desk, sender_of(user, chat_id), value)
            await query.answer()
            party = _party_names(self.language(user)).get(value, value)
            await query.edit_message_text(self.text("party_set", user, party=party))
        elif kind == "tk":
            await query.answer()
            if query.message is not None and isinstance(query.message, Message):
                await self._summary(query.message, user, value)
        elif kind == "pick":
            await self._picked(update, value)
        elif kind in (CONSENT, EXPERT):
            await self._answer(query, kind, value)

    async def _answer(self, query: CallbackQuery, kind: str, value: str) -> None:
        """Yes or no under a referral's question: the requester's consent to an introduction
        (``introductions.consent_pressed``) or the expert's answer to an offer
        (``referral_links.answer_by_press``), each recorded once, for the one it was asked of only."""
        assert self._desk is not None
        desk, user = self._desk, query.from_user
        referral, _, answer = value.partition(":")
        if not referral.isdecimal() or len(referral) > 12:  # isdigit() lets "²" through to int()
            raise InvalidTransition("not a referral")  # forged data: answered and logged by ``button``
        record = introductions.consent_pressed if kind == CONSENT else referral_links.answer_by_press
        done, recorded = await self._retried(
            query,
            lambda: record(desk, int(referral), user.id, answer),
            f"recording the answer ({kind}) to referral {referral}",
        )
        if not done:
            return
        if not recorded:
            await query.answer(self.text("answer_not_taken", user), show_alert=True)
            return
        await query.answer(self.text("answer_recorded", user))
        await query.edit_message_reply_markup(None)

    async def _picked(self, update: Update, value: str) -> None:
        query = update.callback_query
        assert query is not None and self._desk is not None
        desk, user = self._desk, query.from_user
        token, _, choice = value.partition(":")
        done, answered = await self._retried(
            query,
            lambda: followup_question.answer(desk, token, user.id, choice),
            f"answering question {token}",
        )
        if not done:
            return
        if answered is None:  # gone, expired, or someone else's question
            await query.answer(self.text("choice_expired", user), show_alert=True)
            return
        await query.answer()
        await query.edit_message_reply_markup(None)

    async def _retried(
        self, query: CallbackQuery, work: Callable[[], Awaitable[T]], what: str
    ) -> tuple[bool, T | None]:
        """A press's work, retried as long as taking a message is; (False, None) once the database stays
        away, the presser then asked to press again (nothing was changed and the buttons stay)."""
        try:
            return True, await retrying(work, TAKE_RETRY_DELAYS, what=what)
        except Exception:
            log.exception("could not finish %s", what)
            await query.answer(self.text("failed_press", query.from_user), show_alert=True)
            return False, None


def _only_reference(text: str) -> bool:
    return bool(REFERENCE_RE.fullmatch(text.strip().strip("#?!. ")))


def _brief(brief: self_service.TicketBrief) -> dict[str, Any]:
    return {
        "reference": brief.reference,
        "subject": brief.subject,
        "status": brief.status,
        "updated": _when(brief.updated_at),
        "created": _when(brief.created_at),
        "messages": brief.messages,
        "last_reply": brief.last_reply,
    }


def _party_names(language: str) -> dict[str, str]:
    try:
        from knowledge import load_knowledge_base

        kb = _kb_cache.get("kb") or _kb_cache.setdefault("kb", load_knowledge_base())
    except Exception:  # the Party buttons still work with codes
        return {}
    return {code: (p.name_ru if language == "ru" else p.name_en) for code, p in kb.parties.items()}


_kb_cache: dict[str, Any] = {}
