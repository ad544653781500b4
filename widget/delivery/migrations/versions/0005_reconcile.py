"""When a row was first sent, since when its last send's outcome is unknown, and the id
Klaviyo gave it: what the sender needs to look a send up before sending it again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("first_sent_at", sa.DateTime))
    op.add_column("submissions", sa.Column("unknown_since", sa.DateTime))
    op.add_column("submissions", sa.Column("klaviyo_review_id", sa.String(64)))


def downgrade() -> None:
    op.drop_column("submissions", "klaviyo_review_id")
    op.drop_column("submissions", "unknown_since")
    op.drop_column("submissions", "first_sent_at")
