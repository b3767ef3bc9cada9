"""ticket search: a full-text index per ticket and the classification as rows, both kept by triggers

Revision ID: 0011_ticket_search
Revises: 0010_expert_load
Create Date: 2026-11-30 02:30:00

The inbox (helpdesk/usecases/inbox.py) searches a ticket's reference, subject, requester (name, email) and
messages (staff replies and notes too; not our automatic receipts) as one document, so "Aliya PAME" finds
the ticket whose requester is Aliya and whose body says PAME. The document is defined once, by the view
``ticket_search_documents``; triggers rebuild a ticket's row whenever one of those sources is written.

Why triggers and not the use-cases: tickets, messages and requesters are written by receive, reply, note,
staff mail, dead-letter retry, forget, retention, the bench seed and whatever comes next (merge); a trigger
cannot be forgotten by any of them and commits in the same transaction as the write. Forget and retention
scrub the index the same way: erasing a body or a name rebuilds the row without it.

Bounds, because a message body is hostile input: each message counts with its first 20,000 characters,
the first 100 messages of a ticket, and the whole document with its first 100,000 characters (PostgreSQL
refuses a tsvector over 1 MB, and an error there would refuse the mail itself).

- SQLite: ``ticket_search`` is an FTS5 table (unicode61, diacritics folded; ё is folded to е in the view),
  rowid = ticket id. A plain FTS5 table rather than a contentless one: SQLite 3.40 cannot delete from a
  contentless table, and the stored text is what the row is rebuilt from anyway.
- PostgreSQL: ``ticket_search (ticket_id, document tsvector)`` with a GIN index, built with the 'russian'
  configuration, which stems Cyrillic words with the Russian Snowball stemmer and Latin ones with the
  English one: requests are mostly Russian or English.

``ticket_targets`` holds each ticket's KM-GBF targets and core functions (rank 0 the primary one) as rows,
from ``tickets.classification`` (the view ``ticket_target_rows``, same rule as the reports: nothing for a
ticket the classifier marked unclassified), so the inbox filters by an index instead of reading JSON.

``ix_tickets_updated_at_id``: the inbox lists newest activity first and pages by (updated_at, id); the
same order after a status, a channel, a Party or an assignee (``ix_tickets_status_updated_at_id``, …;
the Party's and the assignee's replace the indexes on those columns alone, which they serve as well).
Existing rows are backfilled here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_ticket_search"
down_revision: str | None = "0010_expert_load"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE = [
    "CREATE VIRTUAL TABLE ticket_search USING fts5(document, tokenize = 'unicode61 remove_diacritics 2')",
    """
    CREATE VIEW ticket_search_documents AS
    SELECT t.id AS ticket_id,
        replace(replace(substr(
            t.reference || ' ' || coalesce(t.subject, '') || ' ' || coalesce(r.name, '') || ' '
            || coalesce(r.email, '') || ' '
            || coalesce((
                SELECT group_concat(b, ' ') FROM (
                    SELECT substr(m.body, 1, 20000) AS b FROM messages m
                    WHERE m.ticket_id = t.id AND NOT (m.kind = 'outbound' AND m.automatic)
                    ORDER BY m.id LIMIT 100
                )
            ), ''),
            1, 100000), 'ё', 'е'), 'Ё', 'Е') AS document
    FROM tickets t JOIN requesters r ON r.id = t.requester_id
    """,
    """
    CREATE VIEW ticket_target_rows AS
    SELECT t.id AS ticket_id, k.kind AS kind,
        CAST(CASE WHEN e.type = 'object' THEN json_extract(e.value, '$.' || k.field) END AS INTEGER)
            AS number,
        CAST(e.key AS INTEGER) AS rank
    FROM tickets t
    JOIN (SELECT 'target' AS kind, 'targets' AS list, 'target' AS field
          UNION ALL SELECT 'core_function', 'core_functions', 'core_function') k
    JOIN json_each(t.classification, '$.' || k.list) e
    WHERE coalesce(json_extract(t.classification, '$.unclassified'), 0) = 0
        AND (CASE WHEN e.type = 'object' THEN json_type(e.value, '$.' || k.field) END) = 'integer'
    """,
    """
    CREATE TRIGGER ticket_search_ticket_insert AFTER INSERT ON tickets BEGIN
        INSERT INTO ticket_search (rowid, document)
            SELECT ticket_id, document FROM ticket_search_documents WHERE ticket_id = new.id;
        INSERT OR IGNORE INTO ticket_targets (ticket_id, kind, number, rank)
            SELECT ticket_id, kind, number, rank FROM ticket_target_rows WHERE ticket_id = new.id;
    END
    """,
    """
    CREATE TRIGGER ticket_search_ticket_update AFTER UPDATE OF reference, subject, requester_id ON tickets
    BEGIN
        DELETE FROM ticket_search WHERE rowid = new.id;
        INSERT INTO ticket_search (rowid, document)
            SELECT ticket_id, document FROM ticket_search_documents WHERE ticket_id = new.id;
    END
    """,
    """
    CREATE TRIGGER ticket_targets_ticket_update AFTER UPDATE OF classification ON tickets BEGIN
        DELETE FROM ticket_targets WHERE ticket_id = new.id;
        INSERT OR IGNORE INTO ticket_targets (ticket_id, kind, number, rank)
            SELECT ticket_id, kind, number, rank FROM ticket_target_rows WHERE ticket_id = new.id;
    END
    """,
    """
    CREATE TRIGGER ticket_search_ticket_delete AFTER DELETE ON tickets BEGIN
        DELETE FROM ticket_search WHERE rowid = old.id;
    END
    """,
    """
    CREATE TRIGGER ticket_search_message_insert AFTER INSERT ON messages BEGIN
        DELETE FROM ticket_search WHERE rowid = new.ticket_id;
        INSERT INTO ticket_search (rowid, document)
            SELECT ticket_id, document FROM ticket_search_documents WHERE ticket_id = new.ticket_id;
    END
    """,
    """
    CREATE TRIGGER ticket_search_message_update AFTER UPDATE OF body, kind, automatic, ticket_id ON messages
    BEGIN
        DELETE FROM ticket_search WHERE rowid IN (old.ticket_id, new.ticket_id);
        INSERT INTO ticket_search (rowid, document)
            SELECT ticket_id, document FROM ticket_search_documents
            WHERE ticket_id IN (old.ticket_id, new.ticket_id);
    END
    """,
    """
    CREATE TRIGGER ticket_search_message_delete AFTER DELETE ON messages BEGIN
        DELETE FROM ticket_search WHERE rowid = old.ticket_id;
        INSERT INTO ticket_search (rowid, document)
            SELECT ticket_id, document FROM ticket_search_documents WHERE ticket_id = old.ticket_id;
    END
    """,
    """
    CREATE TRIGGER ticket_search_requester_update AFTER UPDATE OF name, email ON requesters BEGIN
        DELETE FROM ticket_search WHERE rowid IN (SELECT id FROM tickets WHERE requester_id = new.id);
        INSERT INTO ticket_search (rowid, document)
            SELECT ticket_id, document FROM ticket_search_documents
            WHERE ticket_id IN (SELECT id FROM tickets WHERE requester_id = new.id);
    END
    """,
    "INSERT INTO ticket_search (rowid, document) SELECT ticket_id, document FROM ticket_search_documents",
    "INSERT OR IGNORE INTO ticket_targets (ticket_id, kind, number, rank) SELECT * FROM ticket_target_rows",
]

_SQLITE_DOWN = [
    "DROP TRIGGER ticket_search_requester_update",
    "DROP TRIGGER ticket_search_message_delete",
    "DROP TRIGGER ticket_search_message_update",
    "DROP TRIGGER ticket_search_message_insert",
    "DROP TRIGGER ticket_search_ticket_delete",
    "DROP TRIGGER ticket_targets_ticket_update",
    "DROP TRIGGER ticket_search_ticket_update",
    "DROP TRIGGER ticket_search_ticket_insert",
    "DROP VIEW ticket_target_rows",
    "DROP VIEW ticket_search_documents",
    "DROP TABLE ticket_search",
]

_POSTGRESQL = [
    """
    CREATE TABLE ticket_search (
        ticket_id integer PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
        document tsvector NOT NULL
    )
    """,
    "CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document)",
    """
    CREATE VIEW ticket_search_documents AS
    SELECT t.id AS ticket_id,
        replace(replace(left(concat_ws(' ',
            -- the parser reads "TSCC-2026-0042" as a word and two negative numbers, and keeps an address
            -- whole; staff search for their parts
            translate(t.reference, '-', ' '), t.subject, r.name, translate(r.email, '@.-_+', '     '),
            (SELECT string_agg(b, ' ') FROM (
                SELECT left(m.body, 20000) AS b FROM messages m
                WHERE m.ticket_id = t.id AND NOT (m.kind = 'outbound' AND m.automatic)
                ORDER BY m.id LIMIT 100
            ) s)
        ), 100000), 'ё', 'е'), 'Ё', 'Е') AS document
    FROM tickets t JOIN requesters r ON r.id = t.requester_id
    """,
    """
    CREATE VIEW ticket_target_rows AS
    SELECT t.id AS ticket_id, k.kind, (e.value ->> k.field)::integer AS number,
        (e.ordinality - 1)::integer AS rank
    FROM tickets t
    CROSS JOIN (VALUES ('target', 'targets', 'target'), ('core_function', 'core_functions', 'core_function'))
        AS k (kind, list, field)
    CROSS JOIN LATERAL json_array_elements(
        CASE WHEN json_typeof(t.classification -> k.list) = 'array' THEN t.classification -> k.list
        ELSE '[]'::json END
    ) WITH ORDINALITY AS e (value, ordinality)
    WHERE json_typeof(t.classification) = 'object'
        AND coalesce(t.classification ->> 'unclassified', 'false') <> 'true'
        AND json_typeof(e.value) = 'object'
        AND (e.value ->> k.field) ~ '^[0-9]{1,6}$'
    """,
    """
    CREATE FUNCTION ticket_search_refresh(ids integer[]) RETURNS void LANGUAGE sql AS $$
        -- Two transactions adding a message to one ticket: the second waits here until the first commits,
        -- then builds the document from a snapshot holding both messages (without the lock it would wait
        -- on the index row instead, and write a document built before the first message was there).
        SELECT 1 FROM tickets WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
        INSERT INTO ticket_search (ticket_id, document)
        SELECT ticket_id, to_tsvector('russian', document) FROM ticket_search_documents
        WHERE ticket_id = ANY (ids)
        ON CONFLICT (ticket_id) DO UPDATE SET document = excluded.document
    $$
    """,
    """
    CREATE FUNCTION ticket_search_on_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ticket_search_refresh(ARRAY[NEW.id]);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ticket_targets_on_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM ticket_targets WHERE ticket_id = NEW.id;
        END IF;
        INSERT INTO ticket_targets (ticket_id, kind, number, rank)
            SELECT ticket_id, kind, number, rank FROM ticket_target_rows WHERE ticket_id = NEW.id
            ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ticket_search_on_message() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM ticket_search_refresh(ARRAY[NEW.ticket_id]);
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM ticket_search_refresh(ARRAY[OLD.ticket_id]);
        ELSE
            PERFORM ticket_search_refresh(ARRAY[OLD.ticket_id, NEW.ticket_id]);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ticket_search_on_requester() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ticket_search_refresh(ARRAY(SELECT id FROM tickets WHERE requester_id = NEW.id));
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ticket_search_ticket AFTER INSERT OR UPDATE OF reference, subject, requester_id
    ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_search_on_ticket()
    """,
    """
    CREATE TRIGGER ticket_targets_ticket AFTER INSERT OR UPDATE OF classification
    ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_targets_on_ticket()
    """,
    """
    CREATE TRIGGER ticket_search_message AFTER INSERT OR DELETE OR UPDATE OF body, kind, automatic, ticket_id
    ON messages FOR EACH ROW EXECUTE FUNCTION ticket_search_on_message()
    """,
    """
    CREATE TRIGGER ticket_search_requester AFTER UPDATE OF name, email
    ON requesters FOR EACH ROW EXECUTE FUNCTION ticket_search_on_requester()
    """,
    "SELECT ticket_search_refresh(ARRAY(SELECT id FROM tickets))",
    "INSERT INTO ticket_targets (ticket_id, kind, number, rank) SELECT * FROM ticket_target_rows "
    "ON CONFLICT DO NOTHING",
]

_POSTGRESQL_DOWN = [
    "DROP TRIGGER ticket_search_requester ON requesters",
    "DROP TRIGGER ticket_search_message ON messages",
    "DROP TRIGGER ticket_targets_ticket ON tickets",
    "DROP TRIGGER ticket_search_ticket ON tickets",
    "DROP FUNCTION ticket_search_on_requester()",
    "DROP FUNCTION ticket_search_on_message()",
    "DROP FUNCTION ticket_targets_on_ticket()",
    "DROP FUNCTION ticket_search_on_ticket()",
    "DROP FUNCTION ticket_search_refresh(integer[])",
    "DROP VIEW ticket_target_rows",
    "DROP VIEW ticket_search_documents",
    "DROP TABLE ticket_search",
]


def upgrade() -> None:
    op.create_table(
        "ticket_targets",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_targets_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "kind", "number", name=op.f("pk_ticket_targets")),
    )
    op.create_index(
        "ix_ticket_targets_kind_number", "ticket_targets", ["kind", "number", "ticket_id"], unique=False
    )
    op.create_index("ix_tickets_updated_at_id", "tickets", ["updated_at", "id"], unique=False)
    op.create_index(
        "ix_tickets_status_updated_at_id", "tickets", ["status", "updated_at", "id"], unique=False
    )
    op.create_index(
        "ix_tickets_channel_updated_at_id", "tickets", ["channel", "updated_at", "id"], unique=False
    )
    for column in ("party", "assignee"):
        op.create_index(f"ix_tickets_{column}_updated_at_id", "tickets", [column, "updated_at", "id"])
        op.drop_index(f"ix_tickets_{column}", table_name="tickets")
    statements = _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    statements = _POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else _SQLITE_DOWN
    for statement in statements:
        op.execute(statement)
    for column in ("party", "assignee"):
        op.create_index(f"ix_tickets_{column}", "tickets", [column])
        op.drop_index(f"ix_tickets_{column}_updated_at_id", table_name="tickets")
    op.drop_index("ix_tickets_channel_updated_at_id", table_name="tickets")
    op.drop_index("ix_tickets_status_updated_at_id", table_name="tickets")
    op.drop_index("ix_tickets_updated_at_id", table_name="tickets")
    op.drop_index("ix_ticket_targets_kind_number", table_name="ticket_targets")
    op.drop_table("ticket_targets")
