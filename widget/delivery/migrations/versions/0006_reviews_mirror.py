"""The mirror of Klaviyo's reviews, and the state of its sync (with the lease that lets one
process sync at a time).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("review_type", sa.String(16), nullable=False),
        sa.Column("rating", sa.Integer),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("product_external_id", sa.String(255)),
        sa.Column("has_media", sa.Boolean, nullable=False),
        sa.Column("has_reply", sa.Boolean, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("synced_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_reviews_created", "reviews", ["created", "id"])
    op.create_index("ix_reviews_status_created", "reviews", ["status", "created"])
    op.create_index("ix_reviews_product_created", "reviews", ["product_external_id", "created"])
    op.create_index("ix_reviews_email", "reviews", ["email"])
    op.create_index("ix_reviews_updated", "reviews", ["updated"])
    op.create_table(
        "reviews_sync",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(16)),
        sa.Column("watermark", sa.DateTime),
        sa.Column("last_sync_at", sa.DateTime),
        sa.Column("last_full_at", sa.DateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", sa.DateTime),
        sa.Column("last_calls", sa.Integer),
        sa.Column("lease_holder", sa.String(64)),
        sa.Column("lease_until", sa.DateTime),
    )


def downgrade() -> None:
    op.drop_table("reviews_sync")
    op.drop_table("reviews")
