"""telegram session in postgres; messages recorded without an answer

Telethon's session (auth key, DC, update state, entity cache) lives in Postgres so a
listener pod needs no disk and catches up from where the last one stopped.
``message.unanswered_reason`` marks messages kept in the transcript but never answered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _owner(table: str) -> sa.Column:
    return sa.Column(
        "account_key",
        sa.Text(),
        sa.ForeignKey(
            "telegram_session.account_key",
            name=op.f(f"fk_{table}_account_key_telegram_session"),
            ondelete="CASCADE",
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.add_column("message", sa.Column("unanswered_reason", sa.Text()))
    op.create_table(
        "telegram_session",
        sa.Column("account_key", sa.Text(), nullable=False),
        sa.Column("dc_id", sa.Integer(), nullable=False),
        sa.Column("server_address", sa.Text(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("auth_key", sa.LargeBinary()),
        sa.Column("takeout_id", sa.BigInteger()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("account_key", name=op.f("pk_telegram_session")),
    )
    op.create_table(
        "telegram_update_state",
        _owner("telegram_update_state"),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("pts", sa.BigInteger(), nullable=False),
        sa.Column("qts", sa.BigInteger(), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_key", "entity_id", name=op.f("pk_telegram_update_state")),
    )
    op.create_table(
        "telegram_entity",
        _owner("telegram_entity"),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text()),
        sa.Column("phone", sa.Text()),
        sa.Column("name", sa.Text()),
        sa.PrimaryKeyConstraint("account_key", "id", name=op.f("pk_telegram_entity")),
    )


def downgrade() -> None:
    op.drop_table("telegram_entity")
    op.drop_table("telegram_update_state")
    op.drop_table("telegram_session")
    op.drop_column("message", "unanswered_reason")
