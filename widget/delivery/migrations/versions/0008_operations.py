"""Operations: sends counted by outcome, the webhook's events, and the watch on a stuck
queue (widget/delivery/events.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Written out, not imported: a revision keeps the meaning it had when it was written.
OUTCOMES = ("delivered", "throttled", "unavailable", "timeout", "rejected", "expired")


def upgrade() -> None:
    outcomes = op.create_table(
        "delivery_outcomes",
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    # Every counter exists from the start: a send only ever updates its row, so senders in
    # several processes never race to insert one.
    op.bulk_insert(outcomes, [{"outcome": outcome, "count": 0} for outcome in OUTCOMES])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_webhook_events_due", "webhook_events", ["next_attempt_at"])
    watch = op.create_table(
        "queue_watch",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("stuck_since", sa.DateTime),
    )
    op.bulk_insert(watch, [{"id": 1, "stuck_since": None}])


def downgrade() -> None:
    op.drop_table("queue_watch")
    op.drop_index("ix_webhook_events_due", "webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("delivery_outcomes")
