"""expert load: active tickets per assignee as a running figure, kept by triggers on tickets

Revision ID: 0010_expert_load
Revises: 0009_intake_indexes
Create Date: 2026-11-30 02:30:00

Triage counted the load with a GROUP BY over every active ticket for each new ticket (bench/bench_scale.md:
the new-ticket cost grew 1.5-1.8× from 1,000 to 100,000 tickets on PostgreSQL). The figure is now a table
kept by triggers rather than by the code that moves tickets: a trigger sees the row as it is written (on
PostgreSQL after waiting for another transaction's lock on it), so two transactions moving tickets at once
never lose or double a count, and no use-case, bulk statement or seed can forget it. Counts change with
``n = n + 1`` in place (an upsert for an assignee's first ticket); a row stays at 0 when its last ticket
leaves. On PostgreSQL two rows are always changed in the order of their names, so two reassignments
crossing each other (X→Y, Y→X) cannot deadlock.

The statuses counted are helpdesk.lifecycle.ACTIVE as of this revision, written out because a migration is
history: a change to ACTIVE needs a migration that redefines the triggers and recounts
(tests/test_expert_load.py compares the figure with the count from the tickets).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_expert_load"
down_revision: str | None = "0009_intake_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "('new', 'open', 'waiting')"

_FILL = f"""
INSERT INTO expert_load (assignee, open_tickets)
SELECT assignee, count(*) FROM tickets
WHERE assignee IS NOT NULL AND status IN {ACTIVE}
GROUP BY assignee
"""

_POSTGRESQL = [
    f"""
CREATE FUNCTION expert_load_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was text;
    now_ text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.assignee IS NOT NULL AND OLD.status IN {ACTIVE} THEN
            was := OLD.assignee;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.assignee IS NOT NULL AND NEW.status IN {ACTIVE} THEN
            now_ := NEW.assignee;
        END IF;
    END IF;
    IF was IS NOT DISTINCT FROM now_ THEN
        RETURN NULL;
    END IF;
    IF was IS NOT NULL AND (now_ IS NULL OR was < now_) THEN
        UPDATE expert_load SET open_tickets = open_tickets - 1 WHERE assignee = was;
        was := NULL;
    END IF;
    IF now_ IS NOT NULL THEN
        INSERT INTO expert_load (assignee, open_tickets) VALUES (now_, 1)
        ON CONFLICT (assignee) DO UPDATE SET open_tickets = expert_load.open_tickets + 1;
    END IF;
    IF was IS NOT NULL THEN
        UPDATE expert_load SET open_tickets = open_tickets - 1 WHERE assignee = was;
    END IF;
    RETURN NULL;
END
$$
""",
    """
CREATE TRIGGER tickets_expert_load AFTER INSERT OR DELETE OR UPDATE OF status, assignee ON tickets
FOR EACH ROW EXECUTE FUNCTION expert_load_count()
""",
]

_SQLITE = [
    f"""
CREATE TRIGGER tickets_expert_load_insert AFTER INSERT ON tickets
WHEN NEW.assignee IS NOT NULL AND NEW.status IN {ACTIVE}
BEGIN
    INSERT OR IGNORE INTO expert_load (assignee, open_tickets) VALUES (NEW.assignee, 0);
    UPDATE expert_load SET open_tickets = open_tickets + 1 WHERE assignee = NEW.assignee;
END
""",
    f"""
CREATE TRIGGER tickets_expert_load_update AFTER UPDATE OF status, assignee ON tickets
WHEN OLD.assignee IS NOT NEW.assignee
    OR (OLD.assignee IS NOT NULL AND OLD.status IN {ACTIVE})
    <> (NEW.assignee IS NOT NULL AND NEW.status IN {ACTIVE})
BEGIN
    UPDATE expert_load SET open_tickets = open_tickets - 1
    WHERE assignee = OLD.assignee AND OLD.status IN {ACTIVE};
    INSERT OR IGNORE INTO expert_load (assignee, open_tickets)
    SELECT NEW.assignee, 0 WHERE NEW.assignee IS NOT NULL AND NEW.status IN {ACTIVE};
    UPDATE expert_load SET open_tickets = open_tickets + 1
    WHERE assignee = NEW.assignee AND NEW.status IN {ACTIVE};
END
""",
    f"""
CREATE TRIGGER tickets_expert_load_delete AFTER DELETE ON tickets
WHEN OLD.assignee IS NOT NULL AND OLD.status IN {ACTIVE}
BEGIN
    UPDATE expert_load SET open_tickets = open_tickets - 1 WHERE assignee = OLD.assignee;
END
""",
]


def upgrade() -> None:
    op.create_table(
        "expert_load",
        sa.Column("assignee", sa.String(200), nullable=False),
        sa.Column("open_tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("assignee", name=op.f("pk_expert_load")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No ticket may move between the count and the trigger taking over.
        op.execute("LOCK TABLE tickets IN SHARE ROW EXCLUSIVE MODE")
    for statement in _POSTGRESQL if postgresql else _SQLITE:
        op.execute(statement)
    op.execute(_FILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tickets_expert_load ON tickets")
        op.execute("DROP FUNCTION expert_load_count()")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER tickets_expert_load_{name}")
    op.drop_table("expert_load")
