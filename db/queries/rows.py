"""What the queries' rows hold, for the type checker: SQLAlchemy rows are typed by position,
so each query that returns a row names its attributes here. Read-only views, no copies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol


class AccountRow(Protocol):
    id: int
    key: str
    kind: str
    display_name: str
    start_text: str
    help_text: str
    error_text: str
    system_prompt: str | None
    model: str | None
    active: bool
    created_at: datetime


class BurstRow(Protocol):
    """A burst with its conversation's account, chat and topic (``burst_by_key``)."""

    id: int
    burst_key: str
    conversation_id: int
    message_ids: list[int]
    reason: str
    command: str | None
    status: str
    error_type: str | None
    error: str | None
    context_epoch: int
    first_message_at: datetime
    last_message_at: datetime
    flushed_at: datetime
    replied_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None
    notice_sent_at: datetime | None
    retries: int
    generating_until: datetime | None
    account_id: int
    chat_id: int
    topic_id: int | None


class BurstToAnswerRow(BurstRow, Protocol):
    model: str | None
    system_prompt: str | None
    start_text: str
    help_text: str
    reply_id: int | None
    reply_text: str | None
    texts: list[str]


class ReplyToSendRow(BurstRow, Protocol):
    reply_id: int | None
    reply_text: str | None
    delivered: list[int]


class ReplyRow(Protocol):
    id: int
    burst_id: int
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    created_at: datetime


class FinishedBurstRow(Protocol):
    burst_key: str
    message_ids: list[int]
    reason: str
    status: str
    error_type: str | None
    error: str | None
    first_message_at: datetime
    last_message_at: datetime
    flushed_at: datetime
    sent_at: datetime | None
    chat_id: int
    topic_id: int | None
    text: str | None


class FailedBurstRow(Protocol):
    _mapping: Mapping[str, Any]
    burst_key: str
    account: str
    chat_id: int
    topic_id: int | None
    message_ids: list[int]
    error_type: str | None
    error: str | None
    failed_at: datetime | None
    retries: int
    notice_sent_at: datetime | None


class AlertRow(Protocol):
    id: int
    account_id: int
    kind: str
    window_start: datetime
    first_burst_key: str
    error: str
    occurrences: int
    created_at: datetime
    last_seen_at: datetime


class UnflushedMessageRow(Protocol):
    conversation_id: int
    chat_id: int
    topic_id: int | None
    message_id: int
    sender_id: int
    text: str
    command: str | None
    received_at: datetime
