"""channels on messages and events; dead letters

Messages keep the channel they came on (Vonage posts every channel of an
application to the same webhooks), their type and media URL, and what Vonage
reports about inbound cost and network. Status events keep their channel and
the destination network. Correctly signed webhooks the service cannot
interpret are kept raw in `dead_letters`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 07:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=16), server_default="sms", nullable=False)
        )
        batch_op.add_column(sa.Column("message_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("media_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("price", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("network_code", sa.String(length=16), nullable=True))
        batch_op.create_index(
            "ix_messages_channel_created", ["channel", "created_at"], unique=False
        )

    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("network_code", sa.String(length=16), nullable=True))

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("reprocessed_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "body_sha256"),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dead_letters_received_at"), ["received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letters_received_at"))
    op.drop_table("dead_letters")

    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.drop_column("network_code")
        batch_op.drop_column("channel")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_channel_created")
        batch_op.drop_column("network_code")
        batch_op.drop_column("currency")
        batch_op.drop_column("price")
        batch_op.drop_column("media_url")
        batch_op.drop_column("message_type")
        batch_op.drop_column("channel")
