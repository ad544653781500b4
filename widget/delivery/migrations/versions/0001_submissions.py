"""The submissions table, as first written (the skeleton's widget/outbox.py).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("possible_duplicate", sa.Boolean, nullable=False),
        # Unnamed, as SQLAlchemy's `unique=True` made it: Postgres names it
        # submissions_idempotency_key_key, in databases made before Alembic too.
        sa.Column("idempotency_key", sa.String(255), unique=True),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("claimed_at", sa.DateTime),
        sa.Column("delivered_at", sa.DateTime),
    )
    op.create_index("ix_submissions_due", "submissions", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_submissions_due", table_name="submissions")
    op.drop_table("submissions")
