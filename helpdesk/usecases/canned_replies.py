"""Canned replies: staff-managed snippets, one language each, inserted into a reply before it is sent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from helpdesk.db.models import CannedReply
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.rendering import LANGUAGES
from helpdesk.usecases.errors import DeskError

MAX_TITLE = 200
MAX_BODY = 10_000


@dataclass(frozen=True)
class Snippet:
    id: int
    language: str
    title: str
    body: str


def _snippet(row: CannedReply) -> Snippet:
    return Snippet(row.id, row.language, row.title, row.body)


def _checked(language: str, title: str, body: str) -> tuple[str, str, str]:
    title, body = title.strip(), body.strip()
    if language not in LANGUAGES:
        raise DeskError(f"language must be one of {', '.join(LANGUAGES)}")
    if not title or len(title) > MAX_TITLE:
        raise DeskError(f"a canned reply needs a title of 1 to {MAX_TITLE} characters")
    if not body or len(body) > MAX_BODY:
        raise DeskError(f"a canned reply needs a text of 1 to {MAX_BODY} characters")
    return language, title, body


async def list_snippets(desk: Desk, language: str | None = None) -> list[Snippet]:
    query = select(CannedReply).order_by(CannedReply.language, CannedReply.title)
    if language is not None:
        query = query.where(CannedReply.language == language)
    async with desk.sessions() as session:
        return [_snippet(row) for row in await session.scalars(query)]


async def get_snippet(desk: Desk, snippet_id: int) -> Snippet:
    async with desk.sessions() as session:
        row = await session.get(CannedReply, snippet_id)
    if row is None:
        raise DeskError(f"no canned reply #{snippet_id}")
    return _snippet(row)


async def save_snippet(
    desk: Desk, language: str, title: str, body: str, *, actor: str, snippet_id: int | None = None
) -> Snippet:
    language, title, body = _checked(language, title, body)
    try:
        async with desk.sessions.begin() as session:
            if snippet_id is None:
                row = CannedReply(language=language, title=title, body=body, updated_by=actor)
                session.add(row)
            else:
                found = await session.get(CannedReply, snippet_id, with_for_update=True)
                if found is None:
                    raise DeskError(f"no canned reply #{snippet_id}")
                row = found
                row.language, row.title, row.body = language, title, body
                row.updated_by, row.updated_at = actor, utcnow()
            await session.flush()
            return _snippet(row)
    except IntegrityError:
        raise DeskError(f"a canned reply titled {title!r} exists already in {language}") from None


async def delete_snippet(desk: Desk, snippet_id: int) -> None:
    async with desk.sessions.begin() as session:
        row = await session.get(CannedReply, snippet_id)
        if row is None:
            raise DeskError(f"no canned reply #{snippet_id}")
        await session.delete(row)
