"""Fill a database with a realistic help-desk history: `python bench/seed.py --tickets N --database-url URL`.

Not a test and not for production databases. Migrates the database, then writes two years of history ending
now through the project's own tables: requesters (email and Telegram, about one per three tickets), tickets in
every status (older ones mostly closed) with classification and matches, TSCC-YYYY-NNNN references with the
yearly counters set past them, inbound/outbound messages and staff notes with email Message-IDs and Telegram
"<chat>:<message>" ids, attachment metadata, email participants, the audit trail, automatic-reply counts and
outbox rows (mostly sent). Rows go in batches: Core executemany on SQLite, COPY on PostgreSQL, so 100,000
tickets take minutes. Deterministic for a given --seed and --now. Other benches import `seed()`.

It continues after whatever the database already holds (ids and counters), so it may run on a used one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from helpdesk.db.engine import make_engine
from helpdesk.db.migrate import upgrade
from helpdesk.db.models import (
    Attachment,
    AuditEvent,
    AutoReply,
    Message,
    OutboxItem,
    Requester,
    Ticket,
    TicketCounter,
    TicketParticipant,
)
from helpdesk.references import format_reference

SPAN = timedelta(days=730)
BATCH = 2_000  # tickets per batch: bounded memory, few round trips
DESK_DOMAIN = "tscc.example.org"
# The desk's default time zone (helpdesk/desk.py): the year in a reference is the year there.
TIMEZONE = ZoneInfo("Asia/Tashkent")
PARTIES = ("AM", "AZ", "BY", "KZ", "KG", "RU", "TJ", "TM", "UZ", None)
STATUSES = ("new", "open", "waiting", "resolved", "closed")
# Recent tickets are still being worked on; old ones are mostly closed.
STATUS_WEIGHTS = (
    (14, (25, 35, 20, 15, 5)),
    (60, (3, 10, 10, 40, 37)),
    (None, (0.5, 2, 2, 20, 75.5)),
)
STAFF = ("staff-a", "staff-b", "staff-c")
TABLES: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[misc]
    for model in (
        Requester,
        Ticket,
        Message,
        Attachment,
        TicketParticipant,
        AuditEvent,
        AutoReply,
        OutboxItem,
    )
)


@dataclass
class SeedSummary:
    tickets: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # Highest sequence number issued per year: the counters were set to these.
    counters: dict[int, int] = field(default_factory=dict)


@dataclass
class _Ids:
    """Next free id per table: seeding continues after what the database already holds."""

    next: dict[str, int]

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def _status(rng: random.Random, age_days: float) -> str:
    for limit, weights in STATUS_WEIGHTS:
        if limit is None or age_days < limit:
            return rng.choices(STATUSES, weights=weights)[0]
    raise AssertionError("unreachable")


def _classification(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    unclassified = rng.random() < 0.12
    target = rng.choice((1, 2, 3, 4, 11, 14, 20, 21, 23)) if rng.random() < 0.8 else rng.randint(1, 23)
    experts = [f"expert-{rng.randint(1, 60)}" for _ in range(3)]
    classification = {
        "language": "ru",
        "targets": []
        if unclassified
        else [
            {"target": target, "score": round(rng.uniform(0.3, 0.95), 2), "evidence": [f"keyword-{target}"]}
        ],
        "core_functions": [{"core_function": rng.randint(1, 11), "score": 0.5, "evidence": []}],
        "party": None,
        "unclassified": unclassified,
        "source": "classifier",
    }
    matches = {
        "experts": [{"expert": e, "name": e, "score": 0.5, "reasons": ["target"]} for e in experts],
        "resources": []
        if unclassified
        else [{"title": f"Guide {target}", "url": f"https://kb.example/{target}"}],
    }
    return classification, matches


class _History:
    """Generates the rows of one batch of tickets; keeps the running state (ids, counters) between batches."""

    def __init__(
        self, rng: random.Random, ids: _Ids, counters: dict[int, int], n: int, now: datetime
    ) -> None:
        self.rng, self.ids, self.counters, self.n, self.now = rng, ids, counters, n, now
        self.start = now - SPAN
        self.requesters: list[dict[str, Any]] = []  # every requester so far (shared across batches)
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def batch(self, first: int, last: int) -> dict[str, list[dict[str, Any]]]:
        self.rows = {table.name: [] for table in TABLES}
        for i in range(first, last):
            self._ticket(i)
        return self.rows

    def _requester(self, i: int, created: datetime) -> dict[str, Any]:
        # About one requester per three tickets; most come back now and then, new ones keep arriving.
        wanted = max(1, (i + 1) // 3)
        if len(self.requesters) < wanted and (not self.requesters or self.rng.random() < 0.6):
            k = self.ids.take("requesters")
            telegram = self.rng.random() < 0.55
            row = {
                "id": k,
                "name": f"Person {k}",
                "email": None if telegram else f"person{k}@ministry{k % 40}.example.net",
                "telegram_user_id": 700_000_000 + k if telegram else None,
                "telegram_chat_id": 700_000_000 + k if telegram else None,
                "party": self.rng.choice(PARTIES),
                "organisation": f"Ministry {k % 40}",
                "language": self.rng.choice(("ru", "ru", "en")),
                "language_chosen": False,
                "created_at": created,
            }
            self.requesters.append(row)
            self.rows["requesters"].append(row)
            return row
        # Recent requesters more likely: people write again while their matter is alive.
        back = min(len(self.requesters) - 1, int(self.rng.expovariate(1 / 200)))
        return self.requesters[-1 - back] if self.rng.random() < 0.5 else self.rng.choice(self.requesters)

    def _ticket(self, i: int) -> None:
        rng = self.rng
        created = self.start + SPAN * ((i + rng.random()) / self.n)
        requester = self._requester(i, created)
        channel = "email" if requester["email"] else "telegram"
        age_days = (self.now - created).total_seconds() / 86_400
        status = _status(rng, age_days)
        year = created.astimezone(TIMEZONE).year
        self.counters[year] = self.counters.get(year, 0) + 1
        ticket_id = self.ids.take("tickets")
        classification, matches = _classification(rng)
        assignee = None if status == "new" else rng.choice((*STAFF, f"expert-{rng.randint(1, 60)}", None))
        first_response = created + timedelta(hours=rng.expovariate(1 / 20)) if status != "new" else None
        done = (
            created + timedelta(hours=rng.expovariate(1 / 120)) if status in ("resolved", "closed") else None
        )
        if first_response and first_response > self.now:
            first_response = self.now
        if done and done > self.now:
            done = self.now
        reference = format_reference(year, self.counters[year])
        ticket = {
            "id": ticket_id,
            "reference": reference,
            "subject": f"Request about target {rng.randint(1, 23)} ({i})",
            "channel": channel,
            "status": status,
            "priority": "normal",
            "requester_id": requester["id"],
            "assignee": assignee,
            "tags": [],
            "party": requester["party"],
            "language": requester["language"],
            "telegram_chat_id": requester["telegram_chat_id"],
            "telegram_card_message_id": rng.randint(1, 10**6) if rng.random() < 0.7 else None,
            "classification": classification,
            "matches": matches,
            "created_at": created,
            "updated_at": created,
            "first_response_at": first_response,
            "resolved_at": done,
            "closed_at": done if status == "closed" else None,
        }
        self.rows["tickets"].append(ticket)
        actor = (
            f"email:{requester['email']}"
            if requester["email"]
            else f"telegram:{requester['telegram_user_id']}"
        )
        self._audit(ticket_id, actor, "created", created, channel=channel)
        last = self._inbound(ticket, requester, created, actor, first=True)
        self._outbound(ticket, requester, created + timedelta(seconds=1), automatic=True)
        if channel == "email":
            self.rows["mail_auto_replies"].append(
                {
                    "id": self.ids.take("mail_auto_replies"),
                    "recipient": requester["email"],
                    "ticket_id": ticket_id,
                    "kind": "acknowledgement",
                    "created_at": created,
                }
            )
            if rng.random() < 0.06:
                self.rows["ticket_participants"].append(
                    {
                        "id": self.ids.take("ticket_participants"),
                        "ticket_id": ticket_id,
                        "email": f"colleague{ticket_id}@ministry{ticket_id % 40}.example.net",
                        "created_at": created,
                    }
                )
        if assignee:
            self._audit(ticket_id, "staff-a", "assigned", created + timedelta(minutes=5), assignee=assignee)
        when = created
        for _ in range(min(6, int(rng.expovariate(1 / 1.2)))):
            when = min(self.now, when + timedelta(hours=rng.expovariate(1 / 18)))
            self._outbound(ticket, requester, when, automatic=False)
            self._audit(ticket_id, assignee or "staff-a", "replied", when)
            when = min(self.now, when + timedelta(hours=rng.expovariate(1 / 18)))
            last = self._inbound(ticket, requester, when, actor, first=False)
        if rng.random() < 0.15:
            self.rows["messages"].append(
                self._message(
                    ticket,
                    "note",
                    when,
                    author=assignee or "staff-a",
                    body="Internal note: asked the focal point.",
                )
            )
            self._audit(ticket_id, assignee or "staff-a", "noted", when)
        if done is not None:
            self._audit(ticket_id, assignee or "staff-a", "status", done, old="open", new=status)
        ticket["updated_at"] = max(last, done or last)

    def _message(self, ticket: dict[str, Any], kind: str, when: datetime, **values: Any) -> dict[str, Any]:
        row = {
            "id": self.ids.take("messages"),
            "ticket_id": ticket["id"],
            "kind": kind,
            "channel": ticket["channel"],
            "author": None,
            "subject": None,
            "body": "",
            "html": None,
            "channel_message_id": None,
            "automatic": False,
            "unverified": False,
            "created_at": when,
        }
        row.update(values)
        return row

    def _inbound(
        self, ticket: dict[str, Any], requester: dict[str, Any], when: datetime, actor: str, *, first: bool
    ) -> datetime:
        rng = self.rng
        message_id = self.ids.next["messages"]
        if ticket["channel"] == "email":
            channel_id = f"<{message_id}.{rng.getrandbits(32):08x}@ministry.example.net>"
            subject = ticket["subject"] if first else f"Re: [{ticket['reference']}] {ticket['subject']}"
        else:
            channel_id = f"{requester['telegram_chat_id']}:{message_id}"
            subject = None
        body = (
            f"Dear colleagues, we need guidance on {ticket['subject'].lower()}. "
            f"Our focal point can be reached at the ministry. Message {message_id}."
        )
        row = self._message(
            ticket,
            "inbound",
            when,
            author=requester["email"] or requester["name"],
            subject=subject,
            body=body,
            channel_message_id=channel_id,
        )
        self.rows["messages"].append(row)
        if rng.random() < 0.08:
            for n in range(rng.randint(1, 2)):
                self.rows["attachments"].append(
                    {
                        "id": self.ids.take("attachments"),
                        "message_id": row["id"],
                        "filename": f"report-{row['id']}-{n}.pdf",
                        "content_type": "application/pdf",
                        "size": rng.randint(20_000, 4_000_000),
                        "data": None,
                    }
                )
        self._audit(ticket["id"], actor, "received", when, message_channel_id=channel_id)
        return when

    def _outbound(
        self, ticket: dict[str, Any], requester: dict[str, Any], when: datetime, *, automatic: bool
    ) -> None:
        message_id = self.ids.next["messages"]
        if ticket["channel"] == "email":
            channel_id = f"<tscc.{message_id}.{self.rng.getrandbits(32):08x}@{DESK_DOMAIN}>"
            recipient = requester["email"]
        else:
            channel_id = f"{requester['telegram_chat_id']}:{message_id}"
            recipient = str(requester["telegram_chat_id"])
        text = "We received your request." if automatic else "Here is what the Centre suggests."
        row = self._message(
            ticket,
            "outbound",
            when,
            author="helpdesk" if automatic else "staff-a",
            subject=f"[{ticket['reference']}] {ticket['subject']}",
            body=text,
            channel_message_id=channel_id,
            automatic=automatic,
        )
        self.rows["messages"].append(row)
        failed = self.rng.random() < 0.01
        payload = {
            "channel": ticket["channel"],
            "recipient": recipient,
            "text": text,
            "subject": row["subject"],
            "html": None,
            "reference": ticket["reference"],
            "message_id": channel_id,
            "in_reply_to": None,
            "references": [],
            "extra": {},
        }
        self.rows["outbox"].append(
            {
                "id": self.ids.take("outbox"),
                "ticket_id": ticket["id"],
                "message_id": row["id"],
                "channel": ticket["channel"],
                "payload": payload,
                "status": "failed" if failed else "sent",
                "attempts": 8 if failed else 1,
                "next_attempt_at": when,
                "locked_until": None,
                "claim_token": None,
                "last_error": "550 mailbox unavailable" if failed else None,
                "sent_id": None if failed else channel_id,
                "created_at": when,
                "sent_at": None if failed else when,
            }
        )

    def _audit(self, ticket_id: int, actor: str, action: str, when: datetime, **detail: Any) -> None:
        self.rows["audit_events"].append(
            {
                "id": self.ids.take("audit_events"),
                "ticket_id": ticket_id,
                "actor": actor,
                "action": action,
                "detail": detail,
                "created_at": when,
            }
        )


async def _next_ids(connection: AsyncConnection) -> _Ids:
    ids = {}
    for table in TABLES:
        ids[table.name] = (await connection.scalar(select(func.coalesce(func.max(table.c.id), 0)))) + 1
    return _Ids(ids)


async def _write(connection: AsyncConnection, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Parents first (TABLES is in foreign-key order)."""
    if connection.dialect.name == "postgresql":
        raw = (await connection.get_raw_connection()).driver_connection
        # The search index's row triggers (migration 0011) would rebuild a ticket's document once per
        # message; off for the load, then each new ticket is indexed once, by the migration's own function.
        await raw.execute("SET LOCAL session_replication_role = replica")
        for table in TABLES:
            batch = rows[table.name]
            if batch:
                columns = list(batch[0])
                records = [
                    tuple(json.dumps(v) if isinstance(v, dict | list) else v for v in row.values())
                    for row in batch
                ]
                await raw.copy_records_to_table(table.name, records=records, columns=columns)
        await raw.execute("SET LOCAL session_replication_role = origin")
        ids = [row["id"] for row in rows["tickets"]]
        await raw.execute("SELECT ticket_search_refresh($1::integer[])", ids)
        await raw.execute(
            "INSERT INTO ticket_targets SELECT * FROM ticket_target_rows "
            "WHERE ticket_id = ANY ($1::integer[]) ON CONFLICT DO NOTHING",
            ids,
        )
        return
    for table in TABLES:
        if rows[table.name]:
            await connection.execute(insert(table), rows[table.name])


async def seed(
    database_url: str, tickets: int, *, seed: int = 12, now: datetime | None = None, migrate: bool = True
) -> SeedSummary:
    """Add ``tickets`` tickets of history ending at ``now`` (default: the current time) to the database."""
    if migrate:
        await upgrade(database_url)
    now = now or datetime.now(UTC)
    began = time.perf_counter()
    rng = random.Random(seed)
    engine = make_engine(database_url)
    summary = SeedSummary(tickets=tickets)
    try:
        async with engine.begin() as connection:
            ids = await _next_ids(connection)
            counters = {row.year: row.last for row in await connection.execute(select(TicketCounter))}
        history = _History(rng, ids, counters, tickets, now)
        for first in range(0, tickets, BATCH):
            rows = history.batch(first, min(tickets, first + BATCH))
            async with engine.begin() as connection:
                await _write(connection, rows)
            for name, batch in rows.items():
                summary.rows[name] = summary.rows.get(name, 0) + len(batch)
        async with engine.begin() as connection:
            # Numbering continues after the highest reference seeded (helpdesk/usecases/numbering.py).
            await connection.execute(delete(TicketCounter).where(TicketCounter.year.in_(list(counters))))
            await connection.execute(
                insert(TicketCounter), [{"year": y, "last": n} for y, n in counters.items()]
            )
            if connection.dialect.name == "postgresql":
                for table in TABLES:
                    await connection.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)"
                    )
        if engine.dialect.name == "postgresql":
            # What autovacuum would do soon after such a load: the planner needs row counts.
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.exec_driver_sql("ANALYZE")
                # The expert-load triggers left a row version per counted ticket in that tiny table (in a
                # handful of big transactions, where the desk's one move per transaction is pruned as it
                # goes): clear them as autovacuum would, so triage reads it as it is in service.
                await connection.exec_driver_sql("VACUUM expert_load")
        summary.counters = dict(counters)
    finally:
        await engine.dispose()
    summary.seconds = time.perf_counter() - began
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, required=True)
    parser.add_argument("--database-url", required=True, help="e.g. sqlite+aiosqlite:///seed.db")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=None,
        help="end of the history (ISO 8601 with offset); default: now",
    )
    args = parser.parse_args()
    summary = asyncio.run(seed(args.database_url, args.tickets, seed=args.seed, now=args.now))
    print(
        json.dumps(
            {
                "bench": "seed",
                "tickets": summary.tickets,
                "seconds": round(summary.seconds, 1),
                "rows": summary.rows,
                "counters": summary.counters,
            }
        )
    )


if __name__ == "__main__":
    main()
