"""failed bursts: alerts for ops, the user's error notice, retries

``alert`` holds one row per (account, failure kind, hour), so ops are told once per
window however many bursts fail. ``burst.notice_sent_at`` makes the user's error message
go out once; ``burst.retries`` counts `lull retry` runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("burst", sa.Column("failed_at", sa.DateTime(timezone=True)))
    op.add_column("burst", sa.Column("notice_sent_at", sa.DateTime(timezone=True)))
    op.add_column("burst", sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(
        op.f("ix_burst_failed_at"),
        "burst",
        ["failed_at"],
        postgresql_where=sa.text("status = 'failed'"),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_burst_key", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_alert_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("account_id", "kind", "window_start", name="uq_alert_window"),
    )


def downgrade() -> None:
    op.drop_table("alert")
    op.drop_index(op.f("ix_burst_failed_at"), table_name="burst")
    for column in ("retries", "notice_sent_at", "failed_at"):
        op.drop_column("burst", column)
