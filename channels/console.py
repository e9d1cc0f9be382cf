"""The console channel: the interactive chat of `make run`. One local user, one chat."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import DedupingSender, SendTarget
from db.queries import messages as db_messages
from inbound.drain import wait_until_answered
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor
from inbound.input_rules import RejectedMessageError
from workflows.commands import parse_command

log = logging.getLogger("lull.console")

CONSOLE_ACCOUNT_KEY = "console"
CONSOLE_CHAT_ID = 1
CONSOLE_USER_ID = 1
PROMPT = "you> "


class ConsoleSender(DedupingSender):
    max_chars = 100_000

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out

    async def deliver(self, target: SendTarget, text: str, message_id: int) -> None:
        self._out.write(f"\rlull> {text}\n{PROMPT}")
        self._out.flush()


async def _stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def chat(
    ingestor: Ingestor,
    sessionmaker: async_sessionmaker[AsyncSession],
    stop: asyncio.Event,
    *,
    out: TextIO,
    drain_timeout: float,
) -> None:
    """Read lines until EOF or ``stop``; each line is a message. At EOF, wait for replies."""
    reader = await _stdin_reader()
    async with sessionmaker() as session:
        next_id = await db_messages.next_message_id(
            session, account_id=ingestor.account.id, chat_id=CONSOLE_CHAT_ID
        )
    out.write(PROMPT)
    out.flush()
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while True:
            line_task = asyncio.ensure_future(reader.readline())
            done, _ = await asyncio.wait({line_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done:
                line_task.cancel()
                return
            raw = line_task.result()
            if not raw:
                break
            text = raw.decode(errors="replace").rstrip("\n")
            msg = IncomingMessage(
                CONSOLE_CHAT_ID,
                CONSOLE_USER_ID,
                next_id,
                text,
                datetime.now(UTC),
                command=parse_command(text, ingestor.commands),
            )
            try:
                await ingestor.message(msg)
                next_id += 1
            except RejectedMessageError as exc:
                log.info("%s", exc)
            out.write(PROMPT)
            out.flush()
        pending = await wait_until_answered(sessionmaker, ingestor.account.id, within=drain_timeout)
        if pending:
            out.write(f"\n{pending} messages still unanswered; they stay recorded.\n")
    finally:
        stopped.cancel()
