"""Lull's tables. Tables only: no methods, no queries (those live in ``db/queries/``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

# Stable constraint names, so migrations can refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ACCOUNT_KINDS = ("telegram_bot", "telegram_user", "console", "replay")
BURST_STATUSES = ("persisted", "replied", "sent", "failed", "dropped", "superseded")


def _created_at() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


account = Table(
    "account",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("key", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("start_text", Text, nullable=False, server_default="Hi! Write to me any time."),
    Column(
        "help_text", Text, nullable=False, server_default="Just write; I answer when you pause."
    ),
    Column("error_text", Text, nullable=False, server_default="Sorry, something went wrong."),
    Column("system_prompt", Text),
    Column("model", Text),
    Column("active", Boolean, nullable=False, server_default="true"),
    _created_at(),
    # A bot's token, sealed with LULL_SECRET_KEY (db/sealed.py); never returned by the API.
    Column("bot_token", LargeBinary),
    # Per-bot settings (api/schemas.BotSettings): debounce overrides, access lists,
    # commands. Empty: the process's LULL_ settings.
    Column("settings", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The last error a listener met serving the account (shown by GET /bots).
    Column("last_error", Text),
    # Deleted through the API without a purge: the transcript stays, the bot is gone.
    Column("deleted_at", DateTime(timezone=True)),
    # Bumped by every change: listeners and conversations notice changes by it.
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"kind in {ACCOUNT_KINDS}", name="kind"),
)

conversation = Table(
    "conversation",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("account_id", BigInteger, ForeignKey("account.id"), nullable=False),
    Column("chat_id", BigInteger, nullable=False),
    Column("topic_id", BigInteger),
    Column("owner_user_id", BigInteger),
    # The keyed hash that names this chat in Temporal (workflows/ids.chat_reference): the
    # mapping back from a workflow id to the chat.
    Column("chat_ref", Text),
    # Bumped by /refresh: prompts only use history from the current epoch.
    Column("context_epoch", Integer, nullable=False, server_default="0"),
    Column("last_message_at", DateTime(timezone=True)),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A missing topic is a topic too: NULLS NOT DISTINCT keeps one row per (account, chat).
    UniqueConstraint(
        "account_id",
        "chat_id",
        "topic_id",
        name="uq_conversation_chat",
        postgresql_nulls_not_distinct=True,
    ),
)

burst = Table(
    "burst",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("burst_key", Text, nullable=False, unique=True),
    Column("conversation_id", BigInteger, ForeignKey("conversation.id"), nullable=False),
    Column("message_ids", ARRAY(BigInteger), nullable=False),
    Column("reason", Text, nullable=False),
    # The command a command burst answers (a command is always a burst of its own).
    Column("command", Text),
    Column("status", Text, nullable=False, server_default="persisted"),
    Column("error_type", Text),
    Column("error", Text),
    Column("context_epoch", Integer, nullable=False, server_default="0"),
    Column("first_message_at", DateTime(timezone=True), nullable=False),
    Column("last_message_at", DateTime(timezone=True), nullable=False),
    Column("flushed_at", DateTime(timezone=True), nullable=False),
    Column("replied_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    # When the account's error message went to the user for this failed burst (once).
    Column("notice_sent_at", DateTime(timezone=True)),
    # How many times ops re-ran this burst with `lull retry`.
    Column("retries", Integer, nullable=False, server_default="0"),
    # An attempt calling the LLM for this burst holds it until then, renewing it: a second
    # attempt (Temporal delivers an activity at least once) waits instead of paying again.
    Column("generating_until", DateTime(timezone=True)),
    # A superseded burst's successor: the burst that answers its messages.
    Column("superseded_by", BigInteger, ForeignKey("burst.id")),
    # The rule that decided a message from the author before the reply went out:
    # "superseded (1 of 2)", "kept: max wait reached", ...
    Column("mid_reply", Text),
    _created_at(),
    CheckConstraint(f"status in {BURST_STATUSES}", name="status"),
)

message = Table(
    "message",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("account_id", BigInteger, ForeignKey("account.id"), nullable=False),
    Column("chat_id", BigInteger, nullable=False),
    # The channel's own id: Telegram orders a chat's messages by it.
    Column("message_id", BigInteger, nullable=False),
    Column("conversation_id", BigInteger, ForeignKey("conversation.id"), nullable=False),
    Column("sender_id", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default="text"),
    # A command's name ("help"), parsed once by the channel that received it.
    Column("command", Text),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("edited_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("burst_id", BigInteger, ForeignKey("burst.id")),
    # Set for messages kept in the transcript but never answered (group chatter, another
    # user's reply inside someone's flow, bots); such messages never join a burst.
    Column("unanswered_reason", Text),
    UniqueConstraint("account_id", "chat_id", "message_id", name="uq_message_channel_id"),
)

reply = Table(
    "reply",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("burst_id", BigInteger, ForeignKey("burst.id"), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("prompt_tokens", Integer, nullable=False, server_default="0"),
    Column("completion_tokens", Integer, nullable=False, server_default="0"),
    Column("cost", Numeric(14, 8), nullable=False, server_default="0"),
    # The call was cancelled mid-flight (its burst superseded): no text, spend estimated.
    Column("cancelled", Boolean, nullable=False, server_default=false()),
    # The operator who wrote it (an admin send); None: the LLM.
    Column("author", Text),
    _created_at(),
)

delivery = Table(
    "delivery",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("reply_id", BigInteger, ForeignKey("reply.id"), nullable=False),
    Column("chunk_index", Integer, nullable=False),
    # Derived from the burst key and chunk index; Telegram de-duplicates sends by it.
    Column("random_id", BigInteger, nullable=False, unique=True),
    Column("channel_message_id", BigInteger),
    Column("sent_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("reply_id", "chunk_index", name="uq_delivery_chunk"),
)


# A chunk's send attempts that Telegram has not answered (migration 0008): the first one
# with no answer may have been delivered, so past Telegram's de-duplication window the
# chunk is in doubt and not sent again without the operator's say.
send_attempt = Table(
    "send_attempt",
    metadata,
    Column("reply_id", BigInteger, ForeignKey("reply.id"), primary_key=True),
    Column("chunk_index", Integer, primary_key=True),
    Column("in_flight_since", DateTime(timezone=True)),
    Column("unknown_since", DateTime(timezone=True)),
)


# Ops are told of a failure kind once per account per hour: one row per such window, with a
# count of the failures it stands for, so a provider outage is one alert, not thousands.
alert = Table(
    "alert",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("account_id", BigInteger, ForeignKey("account.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("first_burst_key", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("occurrences", Integer, nullable=False, server_default="1"),
    _created_at(),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("account_id", "kind", "window_start", name="uq_alert_window"),
)


def _telegram_session_key() -> Column:
    # Rows owned by one stored Telegram session; they go when the session is deleted.
    return Column(
        "account_key",
        Text,
        ForeignKey("telegram_session.account_key", ondelete="CASCADE"),
        primary_key=True,
    )


# Telethon's session, in our database so listener pods need no disk and keep their update
# state (catch-up after a restart) and entity cache (access hashes to send with).
telegram_session = Table(
    "telegram_session",
    metadata,
    Column("account_key", Text, primary_key=True),
    Column("dc_id", Integer, nullable=False),
    Column("server_address", Text, nullable=False),
    Column("port", Integer, nullable=False),
    # A credential: read only by the listener, never logged or sent through Temporal.
    Column("auth_key", LargeBinary),
    Column("takeout_id", BigInteger),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

telegram_update_state = Table(
    "telegram_update_state",
    metadata,
    _telegram_session_key(),
    # 0 for the account's common box, else a channel id.
    Column("entity_id", BigInteger, primary_key=True),
    Column("pts", BigInteger, nullable=False),
    Column("qts", BigInteger, nullable=False),
    Column("date", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
)

telegram_entity = Table(
    "telegram_entity",
    metadata,
    _telegram_session_key(),
    Column("id", BigInteger, primary_key=True),
    Column("hash", BigInteger, nullable=False),
    Column("username", Text),
    Column("phone", Text),
    Column("name", Text),
)

# Prompt history walks a conversation's bursts newest first; a burst finds its messages.
Index("ix_burst_conversation", burst.c.conversation_id, burst.c.id)
Index("ix_message_burst", message.c.burst_id)
# `lull failed` lists failed bursts without scanning every burst.
Index("ix_burst_failed_at", burst.c.failed_at, postgresql_where=burst.c.status == "failed")
Index("ix_message_conversation", message.c.conversation_id, message.c.message_id)
# GET /chats: newest activity first (db/queries/chats.ACTIVITY), keyset-paginated.
Index(
    "ix_conversation_activity",
    func.coalesce(conversation.c.last_message_at, conversation.c.created_at),
    conversation.c.id,
)

OPERATOR_ROLES = ("admin", "viewer")

# People and machines allowed to use the admin API (api/). Only hashes are stored.
operator = Table(
    "operator",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    # argon2 (pwdlib).
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default="true"),
    _created_at(),
    CheckConstraint("role in ('admin', 'viewer')", name="role"),
)

operator_session = Table(
    "operator_session",
    metadata,
    # sha256 of the cookie's token: a database read does not yield a usable cookie.
    Column("token_hash", LargeBinary, primary_key=True),
    Column("operator_id", BigInteger, ForeignKey("operator.id"), nullable=False),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

api_key = Table(
    "api_key",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # Shown in listings to tell keys apart; the rest of the key is only ever hashed.
    Column("prefix", Text, nullable=False, unique=True),
    Column("key_hash", LargeBinary, nullable=False),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    _created_at(),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("role in ('admin', 'viewer')", name="role"),
)

# Every change made through the API. Append-only: a trigger refuses UPDATE, DELETE and
# TRUNCATE (migration 0011).
audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    # No foreign keys: a purged bot's audit rows outlive it.
    Column("account_id", BigInteger),
    Column("conversation_id", BigInteger),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)
Index("ix_audit_at", audit.c.at)
