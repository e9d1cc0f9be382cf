"""Hostile updates through Telethon's event layer into the real listener (real Postgres and
Temporal): nothing crashes or stalls, each refusal is a clear log line, and the valid
messages around them are answered."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.testing import WorkflowEnvironment

from channels.telegram.listener import TelegramListener
from channels.telegram.session import PostgresSession
from db.tables import account, message
from inbound.accounts import register_account
from inbound.ingestor import Ingestor
from inbound.input_rules import MAX_MESSAGE_CHARS
from inbound.send_queue import send_task_queue
from testkit.keys import TEST_BOX
from testkit.servers import task_queue
from testkit.telethon_feed import SELF_ID, WHEN, offline_client, user
from testkit.workflow_harness import Recorder, new_worker
from workflows.payloads import ConversationConfig

ALICE = 10


def private(msg_id: int, text: str, **extra: object) -> types.UpdateNewMessage:
    fields: dict[str, object] = {"from_id": types.PeerUser(ALICE), **extra}
    return types.UpdateNewMessage(
        message=types.Message(
            id=msg_id, peer_id=types.PeerUser(ALICE), date=WHEN, message=text, **fields
        ),
        pts=1,
        pts_count=1,
    )


HOSTILE = [
    private(2**70, "an id no Telegram has"),
    private(-5, "a negative id"),
    private(3, "\u200b\u200b\u200b"),  # zero-width only: nothing to answer
    types.UpdateDeleteMessages(messages=[2**66, -1], pts=1, pts_count=1),
    types.UpdateEditMessage(
        message=types.Message(id=2**65, peer_id=types.PeerUser(ALICE), date=WHEN, message="x"),
        pts=1,
        pts_count=1,
    ),
    types.UpdateConfig(),
    types.UpdateLoginToken(),
]


async def test_hostile_updates_are_refused_clearly_and_valid_ones_still_answered(
    dev_env: WorkflowEnvironment,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = f"hostile-{uuid.uuid4().hex[:8]}"
    acct = await register_account(sessionmaker, key=key, kind="telegram_bot", display_name=key)
    tq, rec = task_queue(), Recorder()
    ingestor = Ingestor(
        dev_env.client,
        sessionmaker,
        acct,
        config=ConversationConfig(1, 10, 60),
        task_queue=tq,
        chat_hash_key=b"k",
    )
    client = offline_client()
    listener = TelegramListener(
        client, ingestor, PostgresSession(sessionmaker, key, box=TEST_BOX), sessionmaker
    )
    listener.start()
    listener.identify(SELF_ID, user_account=False)

    async def feed(update: object) -> None:
        await client._preprocess_updates([update], [user(ALICE)], [])
        await client._dispatch_update(update)

    valid = [
        private(1, "hi"),
        private(4, "\u202eolleh\u202c and a\x00b"),  # RTL override and a NUL
        private(5, "word " * 2_000_000, media=types.MessageMediaPhoto(photo=None)),  # 10 MB
        private(6, "still there?"),
    ]
    with caplog.at_level(logging.WARNING):
        sends = new_worker(dev_env.client, rec, send_task_queue(tq, key))
        async with new_worker(dev_env.client, rec, tq), sends:
            for update in [valid[0], *HOSTILE[:3], valid[1], *HOSTILE[3:], *valid[2:]]:
                await feed(update)
            # Nothing is left retrying: a refused update does not stall the chat.
            assert await listener.drain(within=20) == 0
            for _ in range(100):
                if len(rec.sent) == 2:
                    break
                await asyncio.sleep(0.1)
    listener.close()
    # The 10 MB caption (cut to 16,384 characters) fills a burst by itself: it flushes at once.
    assert rec.bursts() == [[1, 4, 5], [6]] and len(rec.sent) == 2
    assert rec.persisted[0].reason == "max_chars"
    refusals = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert any(f"message {2**70} in chat {ALICE}: message_id" in m for m in refusals), refusals
    assert any("message -5 in chat 10: message_id -5 is not positive" in m for m in refusals)
    assert any("message 3 in chat 10 is empty" in m for m in refusals)
    assert any(f"edit of message {2**65}" in m for m in refusals)
    assert "cut to 16384" in caplog.text
    async with sessionmaker() as session:
        stored = dict(
            (
                await session.execute(
                    select(message.c.message_id, message.c.text)
                    .join(account, account.c.id == message.c.account_id)
                    .where(account.c.key == key)
                )
            ).all()
        )
    assert sorted(stored) == [1, 4, 5, 6]
    assert stored[4] == "\u202eolleh\u202c and ab"
    assert len(stored[5]) == MAX_MESSAGE_CHARS
