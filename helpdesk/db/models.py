"""The desk's tables: requesters, tickets, messages, attachments, the outbox and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, orm_insert_sentinel, relationship

from helpdesk.db.types import UtcDateTime, utcnow
from helpdesk.lifecycle import Status

# Named constraints so Alembic migrations can alter them on SQLite (batch mode) and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Requester(Base):
    __tablename__ = "requesters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    party: Mapped[str | None] = mapped_column(String(2))
    organisation: Mapped[str | None] = mapped_column(String(300))
    language: Mapped[str | None] = mapped_column(String(8))
    # Chosen by the requester (Telegram /lang): then it wins over the language detected in each message.
    language_chosen: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tickets: Mapped[list[Ticket]] = relationship(back_populates="requester")


# Requesters are looked up by lower(email) (helpdesk/usecases/requesters.py, personal_data): an expression
# index, declared beside the table because it needs the mapped column.
Index("ix_requesters_email_lower", func.lower(Requester.email))


class TicketCounter(Base):
    """Last sequence number issued per year: TSCC-2026-0042 is year 2026, number 42."""

    __tablename__ = "ticket_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "tickets"
    # The expert load counts active tickets per assignee; status alone is served by its leading column.
    # The inbox lists newest activity first and pages by (updated_at, id) (helpdesk/usecases/inbox.py);
    # a status, a channel, a Party or an assignee reads its page in that order too instead of sorting all of
    # its tickets (the last two replace indexes on party and assignee alone, which they serve as well).
    __table_args__ = (
        Index("ix_tickets_status_assignee", "status", "assignee"),
        Index("ix_tickets_updated_at_id", "updated_at", "id"),
        Index("ix_tickets_status_updated_at_id", "status", "updated_at", "id"),
        Index("ix_tickets_channel_updated_at_id", "channel", "updated_at", "id"),
        Index("ix_tickets_party_updated_at_id", "party", "updated_at", "id"),
        Index("ix_tickets_assignee_updated_at_id", "assignee", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    channel: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.NEW.value)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    requester_id: Mapped[int] = mapped_column(ForeignKey("requesters.id"), index=True)
    assignee: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(default=list)
    party: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str | None] = mapped_column(String(8))
    # Where Telegram replies go: the private chat, or the focal points' group the request came from.
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    # The ticket's card in the staff Telegram group, edited in place as the ticket changes.
    telegram_card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # None until the classifier has run: no placeholder classification is ever stored.
    classification: Mapped[dict[str, Any] | None] = mapped_column()
    # Experts and resources matched to the classification, each with its reasons.
    matches: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()

    requester: Mapped[Requester] = relationship(back_populates="tickets")
    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")


class ExpertLoad(Base):
    """Active tickets per assignee, kept by database triggers on ``tickets`` (migration 0010_expert_load).

    Triage weighs every new ticket's experts against their load; counting it from all tickets each time
    grew with the history. The triggers see each row as it is when written (after any lock wait), so two
    transactions moving tickets at once cannot lose a count, whichever code path or bulk statement moves them.
    """

    __tablename__ = "expert_load"

    assignee: Mapped[str] = mapped_column(String(200), primary_key=True)
    open_tickets: Mapped[int] = mapped_column(Integer, default=0)


class Message(Base):
    __tablename__ = "messages"
    # Per kind: Telegram numbers a chat's messages from both sides, and our own sent ids must never make
    # recording a delivery fail. Intake de-duplicates against every kind (our own mail looping back too).
    # The unique constraint starts with (channel, kind): the duplicate check and the In-Reply-To look-up
    # search by channel_message_id, so it leads an index of its own.
    __table_args__ = (
        UniqueConstraint("channel", "kind", "channel_message_id"),
        Index("ix_messages_channel_message_id", "channel_message_id", "channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    # inbound (from the requester or a participant), outbound (to the requester), note (staff only)
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    author: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(1000))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    # The channel's id (email Message-ID, Telegram "<chat>:<message>"): threading and de-duplication.
    channel_message_id: Mapped[str | None] = mapped_column(String(1000))
    automatic: Mapped[bool] = mapped_column(default=False)
    # The sender is not proven: the trusted mail server failed it, or a staff address sent it unproven.
    unverified: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Numbers the rows of one multi-row INSERT on the client, so that SQLite (which cannot tie new ROWIDs
    # to the order of the VALUES) can insert a group's messages in one statement and hand each its id.
    _sentinel: Mapped[int | None] = orm_insert_sentinel()

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)

    message: Mapped[Message] = relationship(back_populates="attachments")


class OutboxItem(Base):
    """A message to deliver, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    channel: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column()
    # pending → sent | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A worker that claimed the item owns it until then; after a crash another worker takes it over.
    locked_until: Mapped[datetime | None] = mapped_column()
    claim_token: Mapped[str | None] = mapped_column(String(64), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_id: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    # Linked as objects so a use-case can queue a message on a ticket not yet flushed: one flush writes all.
    ticket: Mapped[Ticket | None] = relationship()
    message: Mapped[Message | None] = relationship()


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket: Mapped[Ticket | None] = relationship()


class TicketParticipant(Base):
    """Someone besides the requester who takes part in a ticket (an email Cc): their mail is a follow-up."""

    __tablename__ = "ticket_participants"
    __table_args__ = (UniqueConstraint("ticket_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket: Mapped[Ticket] = relationship()


class AutoReply(Base):
    """An automatic email we sent (acknowledgement, notice): counted per recipient to rate-limit them."""

    __tablename__ = "mail_auto_replies"
    __table_args__ = (Index("ix_mail_auto_replies_recipient_sent", "recipient", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket: Mapped[Ticket | None] = relationship()


class ImapCheckpoint(Base):
    """Per mailbox: the UIDVALIDITY last seen and the highest UID whose message is safely in the database."""

    __tablename__ = "imap_checkpoints"

    # "user@host:port/MAILBOX"
    mailbox: Mapped[str] = mapped_column(String(600), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeadLetter(Base):
    """Mail that could not be turned into a ticket, kept raw with the reason until staff retry it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), default="email")
    # Where it came from: mailbox key and UID (informational; the raw bytes are what matters).
    source: Mapped[str | None] = mapped_column(String(600))
    source_uid: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    # new → resolved
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    attempts: Mapped[int] = mapped_column(default=1)
    ticket_reference: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()


class IntakeAttempt(Base):
    """Mail that failed to be received for a reason that may clear up (the database said no), counted
    across polls, restarts and cron runs of `mail poll --once`: after a few it becomes a dead letter
    instead of holding the mailbox for ever. Keyed by the content hash; removed once the mail is in."""

    __tablename__ = "mail_intake_attempts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_reason: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LabelledExample(Base):
    """A staff correction: this request's text belongs to these targets and core functions.

    The classifier votes with these for similar requests from then on.
    """

    __tablename__ = "labelled_examples"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    targets: Mapped[list[int]] = mapped_column(JSON)
    core_functions: Mapped[list[int]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportDelivery(Base):
    """A periodic report already sent (key like "monthly:2026-10"): a restart or a second worker skips it."""

    __tablename__ = "report_deliveries"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RosterExpert(Base):
    """The Centre's real expert roster, loaded by `helpdesk kb load`; replaces the packaged example roster."""

    __tablename__ = "roster_experts"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column()
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeskSecret(Base):
    """A random secret the desk generated once (e.g. "desk"): keys are derived from it per purpose."""

    __tablename__ = "desk_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingChoice(Base):
    """An open "which ticket does this continue?" question of one requester in one chat, or their choice
    said ahead of any question (/new: the chat's next message opens a ticket).

    The messages a question is about wait in ``pending_choice_messages`` until the requester presses a
    button, so a restart between the question and the answer loses nothing, nor one between /new and the
    next message. One row per user and chat.
    """

    __tablename__ = "pending_choices"
    __table_args__ = (UniqueConstraint("telegram_user_id", "telegram_chat_id"),)

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    telegram_chat_id: Mapped[int] = mapped_column(BigInteger)
    # The most recently active ticket offered: where a flood beyond the hold bounds goes meanwhile. None:
    # no question was asked, the row holds only a /new.
    latest_reference: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # When the requester sent /new in this chat: their next message there opens a ticket (migration 0017).
    new_requested_at: Mapped[datetime | None] = mapped_column()


class PendingChoiceMessage(Base):
    """One message held for a question, as the spool's JSON (attachments base64); ``id`` keeps the order."""

    __tablename__ = "pending_choice_messages"
    __table_args__ = (UniqueConstraint("token", "channel_message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(ForeignKey("pending_choices.token"), index=True)
    channel_message_id: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column()
    content: Mapped[str] = mapped_column(Text)


class StaffAccount(Base):
    """A staff member: who may sign in to the web workspace and act as staff in Telegram and by mail."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Kept lower-case: the address is the login and the staff-mail identity.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # admin | agent | viewer (helpdesk/usecases/staff_accounts.py ROLES)
    role: Mapped[str] = mapped_column(String(16))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # argon2id; None: no web sign-in until a password is set.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # Signed into every session cookie: changing it (password change, disable) ends every session.
    session_version: Mapped[int] = mapped_column(default=1)
    disabled_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketPresence(Base):
    """A staff member on a ticket's page (viewing, or replying), as of their last heartbeat."""

    __tablename__ = "ticket_presence"

    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True, autoincrement=False, index=True
    )
    # viewing | replying (helpdesk/usecases/presence.py)
    state: Mapped[str] = mapped_column(String(16))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketTarget(Base):
    """A KM-GBF target or core function a ticket is classified under, rank 0 the primary one.

    Filled from ``tickets.classification`` by database triggers (migration 0011), so every path that
    classifies (triage, reclassify, a future merge, the bench seed) keeps it current without knowing of it;
    the inbox filters by it through an index instead of reading every ticket's JSON.
    """

    __tablename__ = "ticket_targets"
    __table_args__ = (Index("ix_ticket_targets_kind_number", "kind", "number", "ticket_id"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    # "target" or "core_function"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rank: Mapped[int] = mapped_column(Integer)


# Kept by database triggers and not mapped: the full-text index (an FTS5 virtual table and its shadow tables
# on SQLite, a tsvector table on PostgreSQL; migration 0011). Schema comparisons leave these names out.
SEARCH_INDEX_TABLE = "ticket_search"


def mapped_schema_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name``: everything but the search index is described by these models."""
    return not (
        type_ == "table"
        and name is not None
        and (name == SEARCH_INDEX_TABLE or name.startswith(SEARCH_INDEX_TABLE + "_"))
    )


class KbResource(Base):
    """A resource the Centre added or edited from the workspace; overrides the packaged one of the same id."""

    __tablename__ = "kb_resources"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column()
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class CannedReply(Base):
    """A staff-managed snippet inserted into a reply, in one language."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("language", "title"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Referral(Base):
    """A ticket offered to one expert of the roster (or to a provider organisation), and what came of it.

    ``state`` is the expert's answer (offered → accepted | declined | no_answer); what follows an acceptance
    (the requester's consent, the introduction, the cooperation and its outcome) is kept beside it, each
    with its time, so the report counts every step. The ticket's own status is left alone: the desk's
    conversation with the requester and the cooperation between the two sides run on separate clocks.
    """

    __tablename__ = "referrals"
    # The reminder job scans by state and age; an expert's chat message looks up their open offer.
    __table_args__ = (
        Index("ix_referrals_state_offered", "state", "offered_at"),
        Index("ix_referrals_recipient_state", "recipient", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    # The roster id, or None when the referral went to a provider organisation as a group.
    expert_id: Mapped[str | None] = mapped_column(String(100), index=True)
    organisation: Mapped[str | None] = mapped_column(String(300))
    # Where the offer went (the roster's address or Telegram id at that moment): answers are checked
    # against it, so a roster edit after the offer does not let anybody else answer.
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(8))
    covering_message: Mapped[str | None] = mapped_column(Text)
    # The offer's own Message-ID (it names the referral: ``composer.referral_message_id``); a reminder
    # continues its thread.
    channel_message_id: Mapped[str | None] = mapped_column(String(1000))
    state: Mapped[str] = mapped_column(String(16), default="offered")
    created_by: Mapped[str] = mapped_column(String(320))
    offered_at: Mapped[datetime] = mapped_column(default=utcnow)
    reminded_at: Mapped[datetime | None] = mapped_column()
    # The expert's first message back (the report's "time to first answer"), and their yes/no.
    first_answer_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    # The requester's yes/no to being introduced: asked, then answered ("yes" | "no").
    consent_asked_at: Mapped[datetime | None] = mapped_column()
    consent: Mapped[str | None] = mapped_column(String(8))
    consent_at: Mapped[datetime | None] = mapped_column()
    introduced_at: Mapped[datetime | None] = mapped_column()
    cooperation_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_text: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime | None] = mapped_column()

    @property
    def stage(self) -> str:
        """How far the referral has come, as the staff card and ``tickets show`` name it."""
        if self.outcome is not None:
            return f"outcome: {self.outcome}"
        if self.cooperation_at is not None:
            return "in cooperation"
        if self.introduced_at is not None:
            return "introduced"
        if self.consent == "no":
            return "requester declined the introduction"
        if self.consent_asked_at is not None:
            return "waiting for the requester's consent"
        return self.state.replace("_", " ")

    # Joined: every use of a referral (letters, answers, the report) needs its ticket.
    ticket: Mapped[Ticket] = relationship(lazy="joined", innerjoin=True)
