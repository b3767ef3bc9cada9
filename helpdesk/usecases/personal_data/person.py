"""Who a person is: the selector staff name them by, and every identifier they are known by in the desk."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Requester


@dataclass(frozen=True)
class Person:
    """Who to look for: an email address, a Telegram user id, or a requester's row id."""

    email: str | None = None
    telegram_id: int | None = None
    requester_id: int | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.email, self.telegram_id, self.requester_id) if v is not None]
        if len(given) != 1:
            raise ValueError("name the person by exactly one of email, Telegram id or requester id")

    def describe(self) -> str:
        if self.email is not None:
            return f"email {self.email}"
        if self.telegram_id is not None:
            return f"Telegram id {self.telegram_id}"
        return f"requester {self.requester_id}"


def pseudonym(requester_id: int) -> str:
    return f"forgotten-{requester_id}"


def is_forgotten(requester: Requester) -> bool:
    return (
        requester.name == pseudonym(requester.id)
        and requester.email is None
        and requester.telegram_user_id is None
        and requester.telegram_chat_id is None
    )


@dataclass
class Identity:
    """Every identifier of a person: from the selector and from their requester rows."""

    requesters: list[Requester]
    emails: set[str] = field(default_factory=set)
    telegram_ids: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    @property
    def requester_ids(self) -> list[int]:
        return [r.id for r in self.requesters]

    @property
    def actors(self) -> set[str]:
        return {f"email:{e}" for e in self.emails} | {f"telegram:{t}" for t in self.telegram_ids}

    @property
    def recipients(self) -> set[str]:
        return self.emails | {str(t) for t in self.telegram_ids}

    @property
    def authors(self) -> set[str]:
        return self.emails | {str(t) for t in self.telegram_ids} | self.names

    def pattern(self) -> re.Pattern[str] | None:
        parts = [re.escape(e) for e in sorted(self.emails)]
        parts += [rf"(?<!\d){t}(?!\d)" for t in sorted(self.telegram_ids)]
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def label(self) -> str:
        return pseudonym(self.requesters[0].id) if self.requesters else "forgotten"


async def identify(session: AsyncSession, person: Person, *, for_update: bool = False) -> Identity:
    """Their identifiers; ``for_update`` locks their requester rows (in id order) before anything else:
    forget's first lock, which intake in flight for them shares (docs/reliability.md, lock order)."""
    query = select(Requester).order_by(Requester.id)
    if for_update:
        query = query.with_for_update()
    if person.email is not None:
        query = query.where(func.lower(Requester.email) == person.email.strip().lower())
    elif person.telegram_id is not None:
        query = query.where(
            or_(
                Requester.telegram_user_id == person.telegram_id,
                Requester.telegram_chat_id == person.telegram_id,
            )
        )
    else:
        query = query.where(Requester.id == person.requester_id)
    requesters = list(await session.scalars(query))
    identity = Identity(requesters)
    if person.email is not None:
        identity.emails.add(person.email.strip().lower())
    if person.telegram_id is not None:
        identity.telegram_ids.add(person.telegram_id)
    for requester in requesters:
        if requester.email:
            identity.emails.add(requester.email.lower())
        if requester.telegram_user_id is not None:
            identity.telegram_ids.add(requester.telegram_user_id)
            # A private chat's id is the user's id; a group's id belongs to the group, not to them.
            if requester.telegram_chat_id == requester.telegram_user_id:
                identity.telegram_ids.add(requester.telegram_chat_id)
        if requester.name and requester.name != pseudonym(requester.id):
            identity.names.add(requester.name)
    return identity
