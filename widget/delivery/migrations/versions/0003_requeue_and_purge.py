"""requeued_at restarts the age limit of a dead row sent again; delivered rows by age, to purge.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("requeued_at", sa.DateTime))
    op.create_index("ix_submissions_delivered", "submissions", ["state", "delivered_at"])


def downgrade() -> None:
    op.drop_index("ix_submissions_delivered", table_name="submissions")
    op.drop_column("submissions", "requeued_at")
