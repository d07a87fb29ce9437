"""an index of the sends that route replies: `ix_messages_owned_to`

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-27 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None

OWNED_OUTBOUND = sa.text("direction = 'outbound' AND owner IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_messages_owned_to",
        "messages",
        ["to_number", "created_at"],
        unique=False,
        sqlite_where=OWNED_OUTBOUND,
        postgresql_where=OWNED_OUTBOUND,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_owned_to", table_name="messages")
