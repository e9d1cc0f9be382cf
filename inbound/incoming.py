"""What a channel hands the seam, and what the seam answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

CHAT_ACTIONS = frozenset({"typing", "record_audio", "record_video", "upload", "cancel"})


@dataclass(frozen=True)
class Account:
    id: int
    key: str


@dataclass(frozen=True)
class IncomingMessage:
    chat_id: int
    sender_id: int
    message_id: int
    text: str
    sent_at: datetime
    topic_id: int | None = None
    kind: str = "text"
    # The command's name when the text is one: parsed once, by the channel (which knows
    # the account's commands, ``Ingestor.commands``).
    command: str | None = None


@dataclass(frozen=True)
class IngestResult:
    workflow_id: str
    # False when the message was already answered (a re-delivery) and so not signalled.
    signalled: bool
    # The run that received the signal (None when not signalled).
    run_id: str | None = None
