"""send recovery: claims linked to their message, a phase marker, a readiness probe row

Revision ID: 0004
Revises: 0005
Create Date: 2026-11-27 07:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("in_flight_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vonage_called_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_messages_status_created", ["status", "created_at"], unique=False)
    op.create_table(
        "readiness_probes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("probed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("readiness_probes")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_status_created")
        batch_op.drop_column("vonage_called_at")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("in_flight_until")
        batch_op.drop_column("message_id")
