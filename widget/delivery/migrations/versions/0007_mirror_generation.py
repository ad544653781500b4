"""A generation number the mirror's writes count up, so the public display's caches know
when to read the mirror again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviews_sync", sa.Column("generation", sa.Integer, nullable=False,
                                            server_default="0"))


def downgrade() -> None:
    op.drop_column("reviews_sync", "generation")
