"""PostgreSQL: a new message is appended to its ticket's search document instead of rebuilding it

Revision ID: 0020_search_appends_messages
Revises: 0019_search_skips_receipts
Create Date: 2026-11-30 13:45:00

Every inbound message rebuilt its ticket's whole tsvector from the view ``ticket_search_documents`` (0011):
a cost that grows with the ticket (0.5 ms at its first message, 1.4 ms at its 50th, measured on the
INSERT alone), paid inside the intake's transaction. The document's text is the head (reference, subject,
requester) and then each counted message's first 20,000 characters, in id order, joined by spaces; the
first 100 messages, the whole cut at 100,000 characters. A new message comes last in that order, so what
it adds is ``' ' || left(body, 20000)``, cut to what is left of the 100,000: its tsvector is concatenated to
the document's. Tokens never span the space between two parts, so the lexemes are those of a rebuild;
only their positions may differ, and the desk's queries are AND-ed prefixes that read no positions.

Two columns say where the document stands: how many messages it counts and how many characters its text
has; ``ticket_search_refresh`` sets them whenever it rebuilds. A ticket already at 100 messages or 100,000
characters does not change at all; one whose row or counts are missing is rebuilt (so the rows existing at
the upgrade get their counts at their next message, not all at once in the upgrade). The append takes the
ticket's row lock first, as the rebuild does, so a rebuild and an append on one ticket never overtake each
other. Updates, deletes and everything on tickets and requesters still rebuild. SQLite (FTS5) rebuilds as
before: an FTS5 row is re-tokenized whole on any change.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_search_appends_messages"
down_revision: str | None = "0019_search_skips_receipts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bounds of ticket_search_documents (0011): keep them in step.
_MESSAGES, _MESSAGE_CHARS, _DOCUMENT_CHARS = 100, 20000, 100000

_REFRESH = f"""
    CREATE OR REPLACE FUNCTION ticket_search_refresh(ids integer[]) RETURNS void LANGUAGE sql AS $$
        -- Two transactions adding a message to one ticket: the second waits here until the first commits,
        -- then builds the document from a snapshot holding both messages (without the lock it would wait
        -- on the index row instead, and write a document built before the first message was there).
        SELECT 1 FROM tickets WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
        INSERT INTO ticket_search (ticket_id, document, messages_counted, source_chars)
        SELECT d.ticket_id, to_tsvector('russian', d.document),
            (SELECT count(*) FROM (
                SELECT 1 FROM messages m
                WHERE m.ticket_id = d.ticket_id AND NOT (m.kind = 'outbound' AND m.automatic)
                LIMIT {_MESSAGES}
            ) counted),
            length(d.document)
        FROM ticket_search_documents d
        WHERE d.ticket_id = ANY (ids)
        ON CONFLICT (ticket_id) DO UPDATE SET document = excluded.document,
            messages_counted = excluded.messages_counted, source_chars = excluded.source_chars
    $$
    """

_APPEND = f"""
    CREATE FUNCTION ticket_search_on_message_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        counted integer;
        chars integer;
        piece text;
    BEGIN
        PERFORM 1 FROM tickets WHERE id = NEW.ticket_id FOR UPDATE;
        SELECT messages_counted, source_chars INTO counted, chars
            FROM ticket_search WHERE ticket_id = NEW.ticket_id;
        IF counted IS NULL OR chars IS NULL THEN
            PERFORM ticket_search_refresh(ARRAY[NEW.ticket_id]);
        ELSIF counted < {_MESSAGES} AND chars < {_DOCUMENT_CHARS} THEN
            piece := left(' ' || left(NEW.body, {_MESSAGE_CHARS}), greatest({_DOCUMENT_CHARS} - chars, 0));
            UPDATE ticket_search
            SET document = document || to_tsvector('russian', replace(replace(piece, 'ё', 'е'), 'Ё', 'Е')),
                messages_counted = counted + 1, source_chars = chars + length(piece)
            WHERE ticket_id = NEW.ticket_id;
        END IF;
        RETURN NULL;
    END $$
    """

_REFRESH_0011 = """
    CREATE OR REPLACE FUNCTION ticket_search_refresh(ids integer[]) RETURNS void LANGUAGE sql AS $$
        -- Two transactions adding a message to one ticket: the second waits here until the first commits,
        -- then builds the document from a snapshot holding both messages (without the lock it would wait
        -- on the index row instead, and write a document built before the first message was there).
        SELECT 1 FROM tickets WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
        INSERT INTO ticket_search (ticket_id, document)
        SELECT ticket_id, to_tsvector('russian', document) FROM ticket_search_documents
        WHERE ticket_id = ANY (ids)
        ON CONFLICT (ticket_id) DO UPDATE SET document = excluded.document
    $$
    """


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in [
        "ALTER TABLE ticket_search ADD COLUMN messages_counted integer, ADD COLUMN source_chars integer",
        _REFRESH,
        _APPEND,
        "DROP TRIGGER ticket_search_message_insert ON messages",
        """
        CREATE TRIGGER ticket_search_message_insert AFTER INSERT ON messages
        FOR EACH ROW WHEN (NOT (new.kind = 'outbound' AND new.automatic))
        EXECUTE FUNCTION ticket_search_on_message_insert()
        """,
    ]:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in [
        "DROP TRIGGER ticket_search_message_insert ON messages",
        """
        CREATE TRIGGER ticket_search_message_insert AFTER INSERT ON messages
        FOR EACH ROW WHEN (NOT (new.kind = 'outbound' AND new.automatic))
        EXECUTE FUNCTION ticket_search_on_message()
        """,
        "DROP FUNCTION ticket_search_on_message_insert()",
        _REFRESH_0011,
        "ALTER TABLE ticket_search DROP COLUMN messages_counted, DROP COLUMN source_chars",
    ]:
        op.execute(statement)
