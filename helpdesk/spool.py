"""A directory on local disk that keeps inbound messages the database could not take, until it can.

One JSON file per message (attachments base64), written to a temporary name, fsync'd and renamed, so a
crash leaves either the whole message or nothing. File names sort by arrival, so a replay keeps each chat's
order. The spool is bounded by files and bytes: when full, :meth:`InboundSpool.put` refuses (the caller
tells the requester) rather than filling the disk.

File I/O runs in a worker thread: the event loop keeps serving other chats while the disk syncs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any

from helpdesk.messages import Attachment, InboundMessage, OversizedAttachment, Sender

log = logging.getLogger(__name__)

SUFFIX = ".json"


class SpoolFull(Exception):
    """The spool holds as much as it may; the message was not kept."""


@dataclass(frozen=True, slots=True)
class Spooled:
    """A kept message: its file, when it was first kept (wall clock, so it survives a restart)."""

    path: Path
    spooled_at: float
    inbound: InboundMessage
    size: int = 0

    @property
    def chat_id(self) -> int | None:
        return self.inbound.sender.telegram_chat_id


def encode(inbound: InboundMessage, spooled_at: float) -> bytes:
    sender = inbound.sender
    document: dict[str, Any] = {
        "spooled_at": spooled_at,
        "channel": inbound.channel,
        "channel_message_id": inbound.channel_message_id,
        "sender": {
            "name": sender.name,
            "email": sender.email,
            "telegram_user_id": sender.telegram_user_id,
            "telegram_chat_id": sender.telegram_chat_id,
            "language": sender.language,
        },
        "text": inbound.text,
        "subject": inbound.subject,
        "html": inbound.html,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "data": base64.b64encode(a.data).decode(),
            }
            for a in inbound.attachments
        ],
        "replies_to": list(inbound.replies_to),
        "received_at": inbound.received_at.isoformat() if inbound.received_at else None,
        "automatic": inbound.automatic,
        "force_new": inbound.force_new,
        "continues": inbound.continues,
        "automatic_reason": inbound.automatic_reason,
        "stripped_text": inbound.stripped_text,
        "cc": list(inbound.cc),
        "oversized_attachments": [
            {"filename": o.filename, "content_type": o.content_type, "size": o.size}
            for o in inbound.oversized_attachments
        ],
    }
    return json.dumps(document, ensure_ascii=False).encode()


def decode(raw: bytes) -> tuple[InboundMessage, float]:
    d = json.loads(raw)
    inbound = InboundMessage(
        channel=d["channel"],
        channel_message_id=d["channel_message_id"],
        sender=Sender(**d["sender"]),
        text=d["text"],
        subject=d["subject"],
        html=d["html"],
        attachments=tuple(
            Attachment(a["filename"], a["content_type"], base64.b64decode(a["data"]))
            for a in d["attachments"]
        ),
        replies_to=tuple(d["replies_to"]),
        received_at=datetime.fromisoformat(d["received_at"]) if d["received_at"] else None,
        automatic=d["automatic"],
        force_new=d["force_new"],
        continues=d["continues"],
        automatic_reason=d["automatic_reason"],
        stripped_text=d["stripped_text"],
        cc=tuple(d["cc"]),
        oversized_attachments=tuple(OversizedAttachment(**o) for o in d["oversized_attachments"]),
    )
    return inbound, float(d["spooled_at"])


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits in a spool directory, read from the outside (``helpdesk health``) without decoding it."""

    files: int
    bytes: int
    oldest: float | None  # wall-clock time the oldest waiting message was kept
    unreadable: int  # damaged or foreign files set aside as .bad


def backlog(directory: Path) -> Backlog:
    """Count the spool's files (blocking: call it in a thread). Names start with the time they were kept."""
    if not directory.is_dir():
        return Backlog(0, 0, None, 0)
    files = size = 0
    oldest: float | None = None
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue  # replayed in the meantime
        files += 1
        size += stat.st_size
        prefix = path.name.partition("-")[0]
        kept = int(prefix) / 1e9 if prefix.isdigit() else stat.st_mtime
        oldest = kept if oldest is None else min(oldest, kept)
    return Backlog(files, size, oldest, sum(1 for _ in directory.glob("*.bad")))


class InboundSpool:
    def __init__(
        self, directory: Path, *, max_files: int = 10_000, max_bytes: int = 512 * 1024 * 1024
    ) -> None:
        self.directory = directory
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._sequence = count()
        # Chats with a message in the spool: their next messages must queue behind it to keep the order.
        self._chats: dict[int | None, int] = {}
        self._files = 0
        self._bytes = 0
        self._scanned = False
        self._lock = asyncio.Lock()

    async def _scan(self) -> None:
        if self._scanned:
            return
        entries = await asyncio.to_thread(self._read_all)
        for entry in entries:
            self._chats[entry.chat_id] = self._chats.get(entry.chat_id, 0) + 1
            self._files += 1
            self._bytes += entry.size
        self._scanned = True

    async def holds_chat(self, chat_id: int | None) -> bool:
        """Whether a message of this chat waits here (what a previous run left counts too)."""
        if not self._scanned:
            async with self._lock:
                await self._scan()
        return self._chats.get(chat_id, 0) > 0

    def __len__(self) -> int:
        return self._files

    async def put(self, inbound: InboundMessage) -> Spooled:
        """Keep ``inbound`` durably; raises SpoolFull (and says so in the log) when the bounds are reached."""
        async with self._lock:
            await self._scan()
            spooled_at = time.time()
            data = encode(inbound, spooled_at)
            if self._files + 1 > self.max_files or self._bytes + len(data) > self.max_bytes:
                log.error(
                    "inbound spool %s is full (%s files, %s bytes; limits %s files, %s bytes): message %s "
                    "NOT kept, the requester is asked to send it again",
                    self.directory,
                    self._files,
                    self._bytes,
                    self.max_files,
                    self.max_bytes,
                    inbound.channel_message_id,
                )
                raise SpoolFull(inbound.channel_message_id)
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._sequence):06d}{SUFFIX}"
            path = await asyncio.to_thread(self._write, name, data)
            self._files += 1
            self._bytes += len(data)
            self._chats[inbound.sender.telegram_chat_id] = (
                self._chats.get(inbound.sender.telegram_chat_id, 0) + 1
            )
        return Spooled(path, spooled_at, inbound, len(data))

    def _write(self, name: str, data: bytes) -> Path:
        # Requesters' messages outside the database: readable by the service's own user alone.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        # The rename itself is durable only once the directory is synced too.
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return final

    async def entries(self) -> list[Spooled]:
        """Everything kept, oldest first (including what a previous run left)."""
        async with self._lock:
            await self._scan()
        return await asyncio.to_thread(self._read_all)

    def _read_all(self) -> list[Spooled]:
        if not self.directory.is_dir():
            return []
        found: list[Spooled] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                raw = path.read_bytes()
                inbound, spooled_at = decode(raw)
            except FileNotFoundError:
                continue  # removed by a replay in the meantime
            except (ValueError, KeyError, TypeError) as exc:
                # Not ours or damaged: moved aside, never replayed, never silently deleted.
                log.error("inbound spool: %s cannot be read (%s); renamed to .bad", path.name, exc)
                path.replace(path.with_suffix(".bad"))
                continue
            found.append(Spooled(path, spooled_at, inbound, len(raw)))
        return found

    async def remove(self, entry: Spooled) -> None:
        async with self._lock:
            size = await asyncio.to_thread(self._unlink, entry.path)
            if size is None:
                return
            self._files -= 1
            self._bytes -= size
            left = self._chats.get(entry.chat_id, 0) - 1
            if left > 0:
                self._chats[entry.chat_id] = left
            else:
                self._chats.pop(entry.chat_id, None)

    @staticmethod
    def _unlink(path: Path) -> int | None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return None
        return size
