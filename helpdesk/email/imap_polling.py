"""Polling a mailbox in batches: fetch a set of UIDs, hand it to the desk, mark only what it committed.

The desk's batch handler returns which UIDs are committed (ticket, follow-up or dead letter in the
database). Only those are then flagged \\Seen (or moved to the processed folder) in one UID STORE (or
MOVE), so a crash between fetch and commit leaves the mail waiting for the next poll, and a message the
desk could not take is left waiting while the rest go on.

A ``Checkpoint`` keeps UIDVALIDITY and the highest committed UID per mailbox in the database, saved once
per batch: mail that a person marked read in a mail client is still picked up (UIDs above the checkpoint
are fetched whatever their flags), and a changed UIDVALIDITY starts the mailbox over (Message-ID
de-duplication keeps that safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from helpdesk.email.imap_mailbox import ImapAuthError, ImapError, ImapMailbox

log = logging.getLogger(__name__)

# Up to this many mails go to the desk at once (one transaction, one STORE, one checkpoint save)...
BATCH_SIZE = 50
# ...and at most this many bytes of them (their RFC822.SIZE), so a batch of large mail stays in memory
# bounds; one mail larger than this still goes alone.
BATCH_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Handled:
    """What the desk did with a batch. ``committed`` UIDs are safe in the database: marked on the server.
    ``failed`` ones (with their error) and any others stay waiting for the next poll."""

    committed: Sequence[int] = ()
    failed: Mapping[int, BaseException] = field(default_factory=dict)


Batch = Sequence[tuple[int, bytes]]
Handler = Callable[[int, bytes], Awaitable[bool]]


class BatchHandler(Protocol):
    """The desk's side of a batch, in two steps, so that the next batch is prepared while one commits:
    ``prepare`` (parse; nothing marked may depend on it) and ``commit`` (what is now safe to mark)."""

    async def prepare(self, batch: Batch) -> Any: ...

    async def commit(self, prepared: Any) -> Handled: ...


def one_by_one(handle: Handler) -> BatchHandler:
    """A per-message ``handle(uid, raw) -> committed`` as a batch handler (a simple desk, tests)."""
    return _PerMessage(handle)


@dataclass(frozen=True, slots=True)
class _PerMessage:
    handle: Handler

    async def prepare(self, batch: Batch) -> Batch:
        return batch

    async def commit(self, prepared: Batch) -> Handled:
        committed: list[int] = []
        failed: dict[int, BaseException] = {}
        for uid, raw in prepared:
            try:
                if await self.handle(uid, raw):
                    committed.append(uid)
            except Exception as exc:
                log.exception("handling IMAP UID %s failed; left unseen for the next poll", uid)
                failed[uid] = exc
        return Handled(committed, failed)


@dataclass(frozen=True, slots=True)
class Oversized:
    """Mail over ``max_bytes`` (its RFC822.SIZE) is never fetched whole: ``handle(uid, header, size)``
    gets its header block, fetched up to ``header_bytes``, and returns True once it is safe to mark."""

    max_bytes: int
    header_bytes: int
    handle: Callable[[int, bytes, int], Awaitable[bool]]


class Checkpoint(Protocol):
    """Where the UID checkpoint lives (the database, in the help desk)."""

    async def load(self, mailbox: str, uidvalidity: int) -> int:
        """The highest UID committed under this UIDVALIDITY; 0 when none (or the UIDVALIDITY changed)."""
        ...

    async def save(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        """Record ``uid`` as committed (the stored value only ever grows under one UIDVALIDITY)."""
        ...


@dataclass(slots=True)
class PollResult:
    """What one poll did. ``committed`` messages were marked seen; the others stay unseen for a retry."""

    fetched: int = 0
    committed: int = 0
    declined: int = 0
    failed: int = 0
    failed_uids: list[int] = field(default_factory=list)


def batches(
    uids: Sequence[int], sizes: Mapping[int, int], *, count: int = BATCH_SIZE, max_bytes: int = BATCH_BYTES
) -> Iterator[list[int]]:
    """``uids`` in order, cut into runs of at most ``count`` UIDs and ``max_bytes`` of known size."""
    batch: list[int] = []
    held = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= count or held + size > max_bytes):
            yield batch
            batch, held = [], 0
        batch.append(uid)
        held += size
    if batch:
        yield batch


async def poll_once(
    mailbox: ImapMailbox,
    handle: BatchHandler,
    *,
    checkpoint: Checkpoint | None = None,
    oversized: Oversized | None = None,
    batch_size: int = BATCH_SIZE,
) -> PollResult:
    """Hand every waiting message to ``handle`` a batch at a time; mark (or move) only what it committed.

    A batch whose handler raises is logged and counted as failed, and its mail stays waiting; IMAP errors
    (connection lost, NO/BAD) propagate so the caller can reconnect.
    """
    result = PollResult()
    after = saved = 0
    uidvalidity = mailbox.uidvalidity
    if checkpoint is not None and uidvalidity is not None:
        after = saved = await checkpoint.load(mailbox.key, uidvalidity)
    highest = after

    async def done(committed: Sequence[int]) -> None:
        nonlocal highest, saved
        if not committed:
            return
        await mailbox.mark_processed(committed)
        result.committed += len(committed)
        highest = max(highest, *committed)
        # One save per batch: a checkpoint lagging behind a crash only re-fetches a few committed messages,
        # which Message-ID de-duplication turns away.
        if checkpoint is not None and uidvalidity is not None and highest > saved:
            await checkpoint.save(mailbox.key, uidvalidity, highest)
            saved = highest

    waiting = await mailbox.waiting_uids(after)
    sizes = await mailbox.sizes(waiting) if oversized is not None and waiting else {}
    too_big = [uid for uid in waiting if oversized is not None and sizes.get(uid, 0) > oversized.max_bytes]
    for uid in too_big:
        assert oversized is not None
        header = await mailbox.fetch_header(uid, oversized.header_bytes)
        if header is None:
            log.info("IMAP UID %s vanished before it could be fetched", uid)
            continue
        result.fetched += 1
        try:
            committed = await oversized.handle(uid, header, sizes[uid])
        except Exception:
            log.exception("handling oversized IMAP UID %s failed; left unseen for the next poll", uid)
            result.failed += 1
            result.failed_uids.append(uid)
            continue
        if committed:
            await done([uid])
        else:
            result.declined += 1
    skip = set(too_big)
    queue = list(batches([uid for uid in waiting if uid not in skip], sizes, count=batch_size))
    # The next batch is fetched before this one commits and prepared (parsed, in the parser's own
    # process) while it does; IMAP commands stay one at a time on the connection.
    ahead = await _fetch_and_prepare(mailbox, handle, queue.pop(0), sizes) if queue else None
    try:
        while ahead is not None:
            fetched, preparing = ahead
            ahead = None
            prepared = await _outcome(preparing)
            if queue:
                ahead = await _fetch_and_prepare(mailbox, handle, queue.pop(0), sizes)
            if not fetched:
                continue
            result.fetched += len(fetched)
            if isinstance(prepared, Exception):
                handled = Handled(failed=dict.fromkeys(fetched, prepared))
            else:
                try:
                    handled = await handle.commit(prepared)
                except Exception as exc:
                    log.exception(
                        "IMAP UIDs %s–%s failed; left unseen for the next poll", min(fetched), max(fetched)
                    )
                    handled = Handled(failed=dict.fromkeys(fetched, exc))
            committed = sorted(set(handled.committed) & fetched.keys())
            await done(committed)
            failed = sorted(set(handled.failed) & fetched.keys())
            result.failed += len(failed)
            result.failed_uids.extend(failed)
            result.declined += len(fetched) - len(committed) - len(failed)
            del fetched, prepared  # the batch's bytes go before the next batch comes in
    finally:
        if ahead is not None:
            # Awaited, never cancelled: a parse cut off half-way would leave the parser worker out of step.
            await _outcome(ahead[1])
    return result


async def _fetch_and_prepare(
    mailbox: ImapMailbox, handle: BatchHandler, batch: list[int], sizes: Mapping[int, int]
) -> tuple[dict[int, bytes], asyncio.Task[Any]]:
    fetched = await mailbox.fetch(batch, sizes)
    for uid in batch:
        if uid not in fetched:
            log.info("IMAP UID %s vanished before it could be fetched", uid)
    return fetched, asyncio.create_task(handle.prepare(list(fetched.items())))


async def _outcome(task: asyncio.Task[Any]) -> Any:
    """The task's result, or the exception it raised (logged): a batch that cannot be prepared waits."""
    try:
        return await task
    except Exception as exc:
        log.exception("preparing a batch of IMAP mail failed; left unseen for the next poll")
        return exc


async def run_intake(
    open_mailbox: Callable[[], ImapMailbox],
    handle: BatchHandler,
    *,
    interval: float,
    stop: asyncio.Event,
    use_idle: bool = True,
    min_backoff: float = 1.0,
    max_backoff: float = 300.0,
    on_poll: Callable[[PollResult], None] | None = None,
    checkpoint: Checkpoint | None = None,
    oversized: Oversized | None = None,
) -> None:
    """Poll until ``stop`` is set, reconnecting with exponential back-off after errors.

    ``open_mailbox`` makes a fresh, unconnected ``ImapMailbox`` for each (re)connection. Between polls it
    waits ``interval`` seconds, or less when the server supports IDLE and announces new mail.
    """
    backoff = min_backoff
    while not stop.is_set():
        try:
            async with open_mailbox() as mailbox:
                while not stop.is_set():
                    result = await poll_once(mailbox, handle, checkpoint=checkpoint, oversized=oversized)
                    backoff = min_backoff  # a full poll worked: the connection is healthy
                    if on_poll is not None:
                        on_poll(result)
                    if result.fetched:
                        log.info(
                            "IMAP poll: %d fetched, %d committed, %d declined, %d failed",
                            result.fetched,
                            result.committed,
                            result.declined,
                            result.failed,
                        )
                    if use_idle and mailbox.supports_idle:
                        await _until_stopped(mailbox.wait_for_news(interval), stop)
                    else:
                        await _wait(stop, interval)
        except ImapAuthError as exc:
            # Hammering a server with a wrong password gets the account locked: wait the longest back-off.
            log.error("%s; retrying in %.0f s", exc, max_backoff)
            await _wait(stop, max_backoff)
        except ImapError as exc:
            delay = backoff * random.uniform(0.8, 1.2)  # jitter: several desks must not reconnect in step
            log.warning("%s; reconnecting in %.1f s", exc, delay)
            await _wait(stop, delay)
            backoff = min(backoff * 2, max_backoff)
        except Exception:
            # E.g. the checkpoint's database restarting: intake must not end for good; try again later.
            delay = backoff * random.uniform(0.8, 1.2)
            log.exception("email intake failed; starting over in %.1f s", delay)
            await _wait(stop, delay)
            backoff = min(backoff * 2, max_backoff)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _until_stopped(work: Awaitable[object], stop: asyncio.Event) -> None:
    """Run ``work`` but give up on it as soon as ``stop`` is set."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
