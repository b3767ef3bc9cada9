"""The on-disk spool of inbound messages: whole messages (attachments included) survive a new process,
order is kept, the bounds hold with a clear log line, and a damaged file is set aside, never replayed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpdesk.messages import Attachment, InboundMessage, OversizedAttachment, Sender
from helpdesk.spool import InboundSpool, SpoolFull


def message(n: int, chat: int = 42, *, data: bytes = b"") -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        channel_message_id=f"{chat}:{n}",
        sender=Sender(name="Гульнара", telegram_user_id=chat, telegram_chat_id=chat, language="ru"),
        text=f"Сообщение {n}",
        attachments=(Attachment("scan.pdf", "application/pdf", data),) if data else (),
        replies_to=(f"{chat}:{n - 1}",),
        received_at=datetime(2026, 11, 29, 23, 0, n, tzinfo=UTC),
        force_new=n == 1,
        continues="TSCC-2026-0001" if n == 3 else None,
        oversized_attachments=(OversizedAttachment("big.zip", "application/zip", 30_000_000),),
    )


def files(directory: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in directory.glob(pattern))


def write(path: Path, text: str) -> None:
    path.write_text(text)


async def test_round_trip_in_order_across_processes(tmp_path: Path) -> None:
    spool = InboundSpool(tmp_path)
    sent = [message(1, data=b"%PDF-\x00\xff binary"), message(2, chat=43), message(3)]
    for inbound in sent:
        await spool.put(inbound)
    assert not files(tmp_path, ".*.tmp")  # written under a temporary name, then renamed
    # A new process (a new spool object) finds the same messages, oldest first, and the chats they block.
    again = InboundSpool(tmp_path)
    assert await again.holds_chat(42) and await again.holds_chat(43) and not await again.holds_chat(44)
    entries = await again.entries()
    assert [e.inbound for e in entries] == sent
    await again.remove(entries[1])
    assert not await again.holds_chat(43) and len(again) == 2


async def test_bounded_by_files_and_bytes_with_a_clear_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = InboundSpool(tmp_path, max_files=2)
    await spool.put(message(1))
    await spool.put(message(2))
    with caplog.at_level(logging.ERROR), pytest.raises(SpoolFull):
        await spool.put(message(3))
    assert "inbound spool" in caplog.text and "is full" in caplog.text and "42:3" in caplog.text
    assert "Гульнара" not in caplog.text  # no personal data in the log
    small = InboundSpool(tmp_path / "small", max_bytes=2_000)
    with pytest.raises(SpoolFull):
        await small.put(message(1, data=b"x" * 5_000))
    assert len(small) == 0 and not files(tmp_path / "small", "*.json")


async def test_a_damaged_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = InboundSpool(tmp_path)
    await spool.put(message(1))
    write(tmp_path / "00000000000000000001-1-000000.json", "{not json")
    with caplog.at_level(logging.ERROR):
        entries = await InboundSpool(tmp_path).entries()
    assert [e.inbound.channel_message_id for e in entries] == ["42:1"]
    assert (
        files(tmp_path, "*.bad") == ["00000000000000000001-1-000000.bad"] and "cannot be read" in caplog.text
    )


async def test_kept_messages_are_readable_by_the_service_alone(tmp_path: Path) -> None:
    """Spooled messages are requesters' personal data outside the database: owner-only, whatever the umask."""
    import os
    import stat

    directory = tmp_path / "spool"
    previous = os.umask(0o022)
    try:
        spooled = await InboundSpool(directory).put(message(1, data=b"scan"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(spooled.path.stat().st_mode) == 0o600
