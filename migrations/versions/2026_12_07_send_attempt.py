"""send_attempt: a chunk's send whose outcome is unknown

A send whose answer was lost (the listener died, the connection dropped) may have reached
Telegram. Its random_id de-duplicates a repeat only within Telegram's window, so a retry
long after (a burst that then failed and was retried by ops) could show the reply twice.
Each chunk's row says since when an attempt of it has had no answer; past the trusted
window the chunk is in doubt and not sent again without the operator's say.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_attempt",
        sa.Column("reply_id", sa.BigInteger, sa.ForeignKey("reply.id"), nullable=False),
        sa.Column("chunk_index", sa.Integer, nullable=False),
        # An attempt started and not yet answered by Telegram (cleared by a refusal).
        sa.Column("in_flight_since", sa.DateTime(timezone=True)),
        # The first attempt that never got an answer: it may have been delivered.
        sa.Column("unknown_since", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("reply_id", "chunk_index"),
    )


def downgrade() -> None:
    op.drop_table("send_attempt")
