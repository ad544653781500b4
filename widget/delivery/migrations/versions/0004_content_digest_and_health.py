"""content_digest for the repeat rule; outbox_health, where /readyz proves the database writes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The hash of a submission's content, its photos by their content hash.
    op.add_column("submissions", sa.Column("content_digest", sa.String(64)))
    op.create_table(
        "outbox_health",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("checked_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox_health")
    op.drop_column("submissions", "content_digest")
