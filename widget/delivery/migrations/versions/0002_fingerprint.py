"""A fingerprint per submission, to find the same review posted twice.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: adding it rewrites no existing row.
    op.add_column("submissions", sa.Column("fingerprint", sa.String(64)))
    op.create_index("ix_submissions_fingerprint", "submissions", ["fingerprint", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_submissions_fingerprint", table_name="submissions")
    op.drop_column("submissions", "fingerprint")
