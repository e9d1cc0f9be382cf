"""The admin API: bots managed without SQL, operators, sessions, API keys, the audit log

- account: a sealed bot token, per-bot settings (debounce overrides, access lists,
  commands), the last error a listener met, a soft delete, and ``updated_at`` (listeners
  and conversations notice a change by it).
- reply.author: the operator who wrote a reply sent from the admin API (null: the LLM).
- operator, operator_session, api_key: who may use the API. Only hashes are stored.
- audit: every change made through the API. Append-only: a trigger refuses UPDATE,
  DELETE and TRUNCATE, so not even the API's own database role can rewrite it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _now() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.add_column("account", sa.Column("bot_token", sa.LargeBinary()))
    op.add_column(
        "account",
        sa.Column("settings", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("account", sa.Column("last_error", sa.Text()))
    op.add_column("account", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.add_column(
        "account",
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.add_column("reply", sa.Column("author", sa.Text()))
    op.create_table(
        "operator",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("username", sa.Text(), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        _now(),
        sa.CheckConstraint("role in ('admin', 'viewer')", name=op.f("ck_operator_role")),
    )
    op.create_table(
        "operator_session",
        # sha256 of the cookie's token: a database read does not yield a usable cookie.
        sa.Column("token_hash", sa.LargeBinary(), primary_key=True),
        sa.Column("operator_id", sa.BigInteger(), sa.ForeignKey("operator.id"), nullable=False),
        _now(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("prefix", sa.Text(), nullable=False, unique=True),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        _now(),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("role in ('admin', 'viewer')", name=op.f("ck_api_key_role")),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        # No foreign keys: a purged bot's audit rows outlive it.
        sa.Column("account_id", sa.BigInteger()),
        sa.Column("conversation_id", sa.BigInteger()),
        sa.Column("detail", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.execute(
        """
        create function audit_is_append_only() returns trigger language plpgsql as $$
        begin
            raise exception 'audit is append-only (% refused)', tg_op;
        end $$
        """
    )
    op.execute(
        "create trigger audit_append_only before update or delete on audit "
        "for each row execute function audit_is_append_only()"
    )
    op.execute(
        "create trigger audit_no_truncate before truncate on audit "
        "for each statement execute function audit_is_append_only()"
    )
    # GET /chats orders by last activity, newest first, per bot and over all of them.
    op.create_index(
        "ix_conversation_activity",
        "conversation",
        [sa.text("coalesce(last_message_at, created_at)"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_activity", "conversation")
    op.execute("drop table audit")
    op.execute("drop function audit_is_append_only")
    op.drop_table("api_key")
    op.drop_table("operator_session")
    op.drop_table("operator")
    op.drop_column("reply", "author")
    for column in ("updated_at", "deleted_at", "last_error", "settings", "bot_token"):
        op.drop_column("account", column)
