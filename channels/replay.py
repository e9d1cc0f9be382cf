"""The replay channel: a scripted conversation fed through the real ingest seam at its
recorded times. Our demo, our end-to-end harness and our load generator.

Script format (JSON lines, stable):
    {"at": 0.1, "chat": 1, "user": 10, "type": "message", "id": 1, "text": "hi"}
``type`` is message, typing, cancel, edit or delete; ``topic`` is optional.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from channels.base import DedupingSender, SendTarget
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor
from inbound.input_rules import INT64_MAX, INT64_MIN, RejectedMessageError
from workflows.commands import parse_command

log = logging.getLogger("lull.replay")

EventType = Literal["message", "typing", "cancel", "edit", "delete"]
# A script spans at most a day; a later "at" is a mistake (1e300 used to hang the run).
MAX_AT_SECONDS = 86_400.0


class ScriptError(ValueError):
    """A script line is malformed; the message names the file and line."""


class ScriptEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(ge=0, le=MAX_AT_SECONDS, allow_inf_nan=False, strict=True)
    # Telegram's ids are 64-bit (Postgres BIGINT): a bigger one is a mistake in the script.
    # Strict: true or "7" is not an id.
    chat: int = Field(ge=INT64_MIN, le=INT64_MAX, strict=True)
    user: int = Field(ge=INT64_MIN, le=INT64_MAX, strict=True)
    type: EventType
    id: int | None = Field(default=None, ge=1, le=INT64_MAX, strict=True)
    text: str | None = Field(default=None, strict=True)
    topic: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX, strict=True)
    line: int = 0

    @model_validator(mode="after")
    def _fields_for_type(self) -> ScriptEvent:
        if self.type in ("message", "edit", "delete") and self.id is None:
            raise ValueError(f'a "{self.type}" event needs "id"')
        if self.type in ("message", "edit") and self.text is None:
            raise ValueError(f'a "{self.type}" event needs "text"')
        return self


def parse_script(lines: Iterable[str], *, source: str = "script") -> list[ScriptEvent]:
    """Parse every line first, so a bad line stops the run before anything is sent."""
    events = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("a line must be a JSON object")
            data.pop("line", None)
            events.append(ScriptEvent(**data, line=number))
        except (ValueError, ValidationError) as exc:
            raise ScriptError(f"{source}:{number}: {_describe(exc)}") from None
        except RecursionError:
            raise ScriptError(f"{source}:{number}: JSON nested too deeply") from None
    if not events:
        raise ScriptError(f"{source}: no events")
    return sorted(events, key=lambda e: e.at)


def load_script(path: Path) -> list[ScriptEvent]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{path}: {exc.strerror}") from None
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise ScriptError(f"{path}:{number}: not UTF-8 text") from None
    return parse_script(lines, source=str(path))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        return f"{where}: {msg}" if where else msg
    return str(exc)


class ReplaySender(DedupingSender):
    """Collects deliveries in memory; the transcript is read back from Postgres."""

    async def deliver(self, target: SendTarget, text: str, message_id: int) -> None:
        log.debug("delivered %s to chat %s", message_id, target.chat_id)


async def feed(
    ingestor: Ingestor,
    events: list[ScriptEvent],
    *,
    start: float,
    started_at: datetime,
    on_reject: Callable[[str], None],
) -> None:
    """Feed events at their times: chats concurrently, each chat's events in order."""
    by_chat: dict[tuple[int, int | None], list[ScriptEvent]] = defaultdict(list)
    for event in events:
        by_chat[(event.chat, event.topic)].append(event)
    loop = asyncio.get_running_loop()

    async def run_chat(chat_events: list[ScriptEvent]) -> None:
        for event in chat_events:
            delay = start + event.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if event.type in ("typing", "cancel"):
                await ingestor.typing(
                    chat_id=event.chat,
                    topic_id=event.topic,
                    sender_id=event.user,
                    action=event.type,
                )
                continue
            assert event.id is not None
            when = started_at + timedelta(seconds=event.at)
            try:
                if event.type == "delete":
                    await ingestor.delete(
                        chat_id=event.chat,
                        topic_id=event.topic,
                        message_ids=[event.id],
                        deleted_at=when,
                    )
                    continue
                assert event.text is not None
                if event.type == "edit":
                    await ingestor.edit(
                        chat_id=event.chat,
                        topic_id=event.topic,
                        message_id=event.id,
                        text=event.text,
                        edited_at=when,
                    )
                    continue
                await ingestor.message(
                    IncomingMessage(
                        chat_id=event.chat,
                        sender_id=event.user,
                        message_id=event.id,
                        text=event.text,
                        sent_at=when,
                        topic_id=event.topic,
                        command=parse_command(event.text, ingestor.commands),
                    )
                )
            except RejectedMessageError as exc:
                on_reject(f"line {event.line}: {exc}")

    await asyncio.gather(*(run_chat(chat_events) for chat_events in by_chat.values()))


def transcript_line(account_key: str, row: Any, started_at: datetime) -> str:
    def since(moment: datetime | None) -> float | None:
        return None if moment is None else round((moment - started_at).total_seconds(), 3)

    return json.dumps(
        {
            "account": account_key,
            "chat": row.chat_id,
            "burst": row.burst_key,
            "message_ids": list(row.message_ids),
            "reason": row.reason,
            "text": row.text,
            "first_at": since(row.first_message_at),
            "flushed_at": since(row.flushed_at),
            "sent_at": since(row.sent_at),
        },
        ensure_ascii=False,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def write_lines(out: TextIO, lines: Iterable[str]) -> None:
    for line in lines:
        out.write(line + "\n")
    out.flush()
