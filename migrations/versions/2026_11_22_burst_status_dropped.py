"""burst status dropped

A burst can end without a reply: its messages were all deleted before it was persisted,
the conversation was paused (human handoff), or ops cleared it. Such a burst is kept, with
status 'dropped' and the why in error_type, so nothing a user sent disappears unrecorded.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD = "status in ('persisted', 'replied', 'sent', 'failed')"
NEW = "status in ('persisted', 'replied', 'sent', 'failed', 'dropped')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_burst_status"), "burst", type_="check")
    op.create_check_constraint(op.f("ck_burst_status"), "burst", NEW)


def downgrade() -> None:
    # Dropped bursts cannot be expressed in the old schema; keep them as failed.
    op.execute("update burst set status = 'failed' where status = 'dropped'")
    op.drop_constraint(op.f("ck_burst_status"), "burst", type_="check")
    op.create_check_constraint(op.f("ck_burst_status"), "burst", OLD)
