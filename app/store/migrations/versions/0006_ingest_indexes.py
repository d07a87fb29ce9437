"""indexes for ingest at scale: owned sends indexed, a redundant index dropped

`ix_messages_owned_to` serves the reply-routing reads of every inbound webhook.
`ix_message_events_message_uuid` repeated the first column of the unique
(message_uuid, status, timestamp) index, which serves the same look-ups; each
status webhook paid for writing both.

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
    op.drop_index("ix_message_events_message_uuid", table_name="message_events")


def downgrade() -> None:
    op.create_index(
        "ix_message_events_message_uuid", "message_events", ["message_uuid"], unique=False
    )
    op.drop_index("ix_messages_owned_to", table_name="messages")
