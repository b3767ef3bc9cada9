"""Staff accounts: add, list, change a password, disable; and loading the account a web session names.

Roles are ordered: each one may do what the ones before it may (viewer reads, agent works tickets, admin
also manages accounts and the knowledge base).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import AuditEvent, StaffAccount
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.passwords import hash_password, password_problem, verify_password

ROLES = ("viewer", "agent", "admin")


class AccountError(DeskError):
    pass


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member as the web sees them, reloaded on every request."""

    id: int
    email: str
    name: str
    role: str
    session_version: int

    @property
    def actor(self) -> str:
        """How the audit trail names what they did from the web."""
        return f"web:{self.email}"

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def _staff(account: StaffAccount) -> Staff:
    return Staff(account.id, account.email, account.name, account.role, account.session_version)


def _normalised_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not (local and at and "." in domain) or any(c.isspace() for c in email) or len(email) > 320:
        raise AccountError(f"not an email address: {email!r}")
    return email


def _audit(session: AsyncSession, actor: str | None, action: str, email: str, **detail: Any) -> None:
    """Who changed an account, in the same transaction (the web names its admin; the CLI passes none)."""
    if actor is not None:
        session.add(
            AuditEvent(ticket_id=None, actor=actor, action=action, detail={"account": email, **detail})
        )


async def _account(session: AsyncSession, email: str) -> StaffAccount:
    account = await session.scalar(
        select(StaffAccount).where(StaffAccount.email == _normalised_email(email)).with_for_update()
    )
    if account is None:
        raise AccountError(f"no staff account {email.strip().lower()}")
    return account


async def add_account(
    desk: Desk,
    email: str,
    *,
    name: str,
    role: str,
    telegram_user_id: int | None = None,
    password: str | None = None,
    actor: str | None = None,
) -> Staff:
    email = _normalised_email(email)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name.strip():
        raise AccountError("an account needs a name")
    if password is not None and (problem := password_problem(password)):
        raise AccountError(problem)
    password_hash = await hash_password(password) if password is not None else None
    async with desk.sessions.begin() as session:
        if await session.scalar(select(StaffAccount.id).where(StaffAccount.email == email)) is not None:
            raise AccountError(f"a staff account {email} exists already")
        if telegram_user_id is not None and await session.scalar(
            select(StaffAccount.email).where(StaffAccount.telegram_user_id == telegram_user_id)
        ):
            raise AccountError(f"Telegram id {telegram_user_id} belongs to another account")
        account = StaffAccount(
            email=email,
            name=name.strip(),
            role=role,
            telegram_user_id=telegram_user_id,
            password_hash=password_hash,
            session_version=1,
        )
        session.add(account)
        _audit(session, actor, "account_added", email, role=role)
        await session.flush()
        return _staff(account)


async def list_accounts(desk: Desk) -> list[dict[str, Any]]:
    async with desk.sessions() as session:
        accounts = await session.scalars(select(StaffAccount).order_by(StaffAccount.email))
        return [
            {
                "email": a.email,
                "name": a.name,
                "role": a.role,
                "telegram_user_id": a.telegram_user_id,
                "has_password": a.password_hash is not None,
                "disabled": a.disabled_at is not None,
                "created_at": a.created_at.isoformat(),
            }
            for a in accounts
        ]


async def set_password(desk: Desk, email: str, password: str, *, actor: str | None = None) -> None:
    """A new password ends every session the account had."""
    if problem := password_problem(password):
        raise AccountError(problem)
    password_hash = await hash_password(password)
    async with desk.sessions.begin() as session:
        account = await _account(session, email)
        account.password_hash = password_hash
        account.session_version += 1
        _audit(session, actor, "account_password_set", account.email)


async def set_role(desk: Desk, email: str, role: str, *, actor: str | None = None) -> None:
    """The role is reloaded on every request, so it takes effect on the account's next page."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    async with desk.sessions.begin() as session:
        account = await _account(session, email)
        _audit(session, actor, "account_role_changed", account.email, previous=account.role, role=role)
        account.role = role


async def disable_account(desk: Desk, email: str, *, actor: str | None = None) -> None:
    """Not staff anywhere any more (web, Telegram, mail); every session ends. Kept for the audit trail."""
    async with desk.sessions.begin() as session:
        account = await _account(session, email)
        if account.disabled_at is None:
            account.disabled_at = utcnow()
        account.session_version += 1
        _audit(session, actor, "account_disabled", account.email)


async def sign_in(desk: Desk, email: str, password: str) -> Staff | None:
    """The account ``email`` and ``password`` prove, or None (unknown, wrong, disabled: all look alike)."""
    async with desk.sessions() as session:
        account = await session.scalar(
            select(StaffAccount).where(StaffAccount.email == email.strip().lower()[:320])
        )
    ok = await verify_password(account.password_hash if account else None, password)
    if not ok or account is None or account.disabled_at is not None:
        return None
    return _staff(account)


async def session_staff(desk: Desk, account_id: int, session_version: int) -> Staff | None:
    """The account a session names, if it is still enabled and the session still current."""
    async with desk.sessions() as session:
        account = await session.get(StaffAccount, account_id)
    if account is None or account.disabled_at is not None or account.session_version != session_version:
        return None
    return _staff(account)


async def assignable_staff(desk: Desk) -> list[Staff]:
    """Enabled accounts that work tickets, for the assign picker."""
    async with desk.sessions() as session:
        accounts = await session.scalars(
            select(StaffAccount)
            .where(StaffAccount.disabled_at.is_(None), StaffAccount.role.in_(("agent", "admin")))
            .order_by(func.lower(StaffAccount.name))
        )
        return [_staff(a) for a in accounts]
