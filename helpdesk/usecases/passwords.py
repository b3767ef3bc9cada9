"""Staff passwords: argon2id hashes, computed off the event loop (each takes tens of milliseconds)."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing a megabyte "password" would be a cheap way to burn the server's CPU

# Verified against when the account does not exist, so an unknown address costs as long as a known one.
_DUMMY_PASSWORD = "not a password of anyone"


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be used, or None."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password may have at most {MAX_LENGTH} characters"
    return None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash is checked against a dummy (same time, False)."""
    if len(password) > MAX_LENGTH:
        return False
    target = stored_hash or await _dummy_hash()
    try:
        ok = await asyncio.to_thread(_hasher().verify, target, password)
    except (VerificationError, InvalidHashError):
        return False
    return bool(ok) and stored_hash is not None


_dummy: str | None = None


async def _dummy_hash() -> str:
    global _dummy
    if _dummy is None:
        _dummy = await hash_password(_DUMMY_PASSWORD)
    return _dummy
