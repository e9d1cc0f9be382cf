"""The API's bodies and answers. Every body forbids unknown fields, so a typo is a 422
that names it rather than a setting silently ignored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from app.bot_settings import BotSettings
from app.settings import ACCOUNT_KEY

Role = Literal["admin", "viewer"]
BotKind = Literal["telegram_bot", "telegram_user"]
# Telegram's bot token format: "<bot id>:<35 characters>".
BOT_TOKEN_PATTERN = r"^[0-9]{1,20}:[A-Za-z0-9_-]{30,64}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class Login(Body):
    username: str = Field(min_length=1, max_length=128)
    password: SecretStr = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    actor: str
    role: Role


class BotFields(Body):
    """What POST /bots sets and PUT /bots/{id} changes (PUT changes the fields it names)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    bot_token: SecretStr | None = Field(default=None, description="write-only; stored sealed")
    start_text: str | None = Field(default=None, min_length=1, max_length=4096)
    help_text: str | None = Field(default=None, min_length=1, max_length=4096)
    error_text: str | None = Field(default=None, min_length=1, max_length=4096)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    system_prompt: str | None = Field(default=None, max_length=100_000)
    settings: BotSettings | None = None
    active: bool | None = None

    @field_validator("bot_token")
    @classmethod
    def _token_format(cls, value: SecretStr | None) -> SecretStr | None:
        import re

        if value is not None and not re.fullmatch(BOT_TOKEN_PATTERN, value.get_secret_value()):
            raise ValueError("not a Telegram bot token (<bot id>:<secret> from @BotFather)")
        return value


class NewBot(BotFields):
    key: str = Field(pattern=f"^{ACCOUNT_KEY.pattern}$", description="names its task queue; fixed")
    kind: BotKind = "telegram_bot"


class Bot(BaseModel):
    id: int
    key: str
    kind: str
    name: str
    start_text: str
    help_text: str
    error_text: str
    model: str | None
    system_prompt: str | None
    settings: BotSettings
    active: bool
    has_token: bool
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> Bot:
        return cls(
            id=row.id,
            key=row.key,
            kind=row.kind,
            name=row.display_name,
            start_text=row.start_text,
            help_text=row.help_text,
            error_text=row.error_text,
            model=row.model,
            system_prompt=row.system_prompt,
            settings=BotSettings.stored(row.settings),
            active=row.active,
            has_token=row.has_token,
            last_error=row.last_error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class Chat(BaseModel):
    id: int
    bot_id: int
    bot_key: str
    chat_id: int
    topic_id: int | None
    chat_ref: str | None
    last_activity: datetime
    has_failed: bool

    @classmethod
    def of(cls, row: Any) -> Chat:
        return cls(
            id=row.id,
            bot_id=row.account_id,
            bot_key=row.account_key,
            chat_id=row.chat_id,
            topic_id=row.topic_id,
            chat_ref=row.chat_ref,
            last_activity=row.last_activity,
            has_failed=row.has_failed,
        )


class ChatPage(BaseModel):
    chats: list[Chat]
    # Pass as ?cursor= for the next page; null on the last page.
    next_cursor: str | None


class ChatDetail(Chat):
    # "active" or "paused" with an open conversation run, "idle" without one.
    phase: str
    workflow_id: str | None
    # The run's state (buffer, deadline, what it is doing), as `lull inspect` shows it.
    state: dict[str, Any] | None


class Message(BaseModel):
    id: int
    message_id: int
    sender_id: int
    text: str
    kind: str
    command: str | None
    sent_at: datetime
    received_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    burst_id: int | None


class Burst(BaseModel):
    id: int
    burst_key: str
    message_ids: list[int]
    reason: str
    command: str | None
    status: str
    error_type: str | None
    mid_reply: str | None
    superseded_by: int | None
    flushed_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    reply_text: str | None
    model: str | None
    # The operator who wrote the reply (an admin send); null: the LLM.
    author: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: Decimal | None
    cancelled: bool | None


class Transcript(BaseModel):
    messages: list[Message]
    bursts: list[Burst]
    total_cost: Decimal
    # The message row id to pass as ?before= for older messages; null at the start.
    next_before: int | None


class AdminSend(Body):
    text: str = Field(min_length=1, max_length=40_960)


class AdminSent(BaseModel):
    burst_key: str
    # "sent", or "pending" while the account's listener has not delivered it yet.
    status: str
    chunks: int | None = None
    # True when this request repeated an earlier one's Idempotency-Key.
    repeated: bool


class Pause(Body):
    minutes: float | None = Field(default=None, gt=0, le=60 * 24 * 30)


class FailedBurst(BaseModel):
    model_config = ConfigDict(extra="allow")

    burst_key: str


class RetryOptions(Body):
    resend_in_doubt: bool = False


class NewApiKey(Body):
    name: str = Field(min_length=1, max_length=200)
    role: Role = "viewer"


class ApiKey(BaseModel):
    id: int
    prefix: str
    name: str
    role: Role
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKey(ApiKey):
    # Shown once: only its hash is stored.
    key: str


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    account_id: int | None
    conversation_id: int | None
    detail: dict[str, Any]
