"""burst status superseded, burst.superseded_by, burst.mid_reply, reply.cancelled

A message from a burst's author before its reply went out supersedes the burst: its reply
is discarded (or its LLM call cancelled), its messages are released to the burst that
takes it over, and the row keeps what happened: status 'superseded', the successor, and
in mid_reply the rule that decided (also for a burst a bound kept from being superseded).
A cancelled call's reply row holds its estimated spend and is marked cancelled.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD = "status in ('persisted', 'replied', 'sent', 'failed', 'dropped')"
NEW = "status in ('persisted', 'replied', 'sent', 'failed', 'dropped', 'superseded')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_burst_status"), "burst", type_="check")
    op.create_check_constraint(op.f("ck_burst_status"), "burst", NEW)
    op.add_column("burst", sa.Column("superseded_by", sa.BigInteger(), sa.ForeignKey("burst.id")))
    op.add_column("burst", sa.Column("mid_reply", sa.Text()))
    op.add_column(
        "reply",
        sa.Column("cancelled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("reply", "cancelled")
    op.drop_column("burst", "mid_reply")
    op.drop_column("burst", "superseded_by")
    # A superseded burst's messages belong to its successor; the row stays, as dropped.
    op.execute(
        "update burst set status = 'dropped', error_type = 'superseded' where status = 'superseded'"
    )
    op.drop_constraint(op.f("ck_burst_status"), "burst", type_="check")
    op.create_check_constraint(op.f("ck_burst_status"), "burst", OLD)
