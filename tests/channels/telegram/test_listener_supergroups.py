"""Supergroups and forum topics (which the project's MTProto server does not model): real
Telethon updates through Telethon's event layer into the real listener, whose signals
must reach a real Temporal server as the right conversations."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.testing import WorkflowEnvironment

from channels.telegram.listener import TelegramListener
from channels.telegram.session import PostgresSession
from inbound.accounts import register_account
from inbound.ingestor import Ingestor
from testkit.keys import TEST_BOX
from testkit.servers import task_queue
from testkit.telethon_feed import SELF_ID, WHEN, channel, offline_client, user
from testkit.workflow_harness import Recorder, new_worker
from workflows.conversation import ConversationWorkflow
from workflows.payloads import ConversationConfig

ALICE = 10
FORUM = 501
SUPERGROUP = 500


def channel_message(channel_id: int, msg_id: int, text: str, **extra: object) -> object:
    return types.UpdateNewChannelMessage(
        message=types.Message(
            id=msg_id,
            peer_id=types.PeerChannel(channel_id),
            date=WHEN,
            message=text,
            from_id=types.PeerUser(ALICE),
            **extra,
        ),
        pts=msg_id,
        pts_count=1,
    )


async def test_supergroup_and_topic_updates_reach_their_conversations(
    dev_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    key = f"sg-{uuid.uuid4().hex[:8]}"
    account = await register_account(sessionmaker, key=key, kind="telegram_bot", display_name=key)
    # A long quiet period: the conversations stay open with their messages buffered. A
    # longer typing window, so typing can extend it.
    config = ConversationConfig(600, 10, 1200, max_wait_seconds=1200, typing_window_seconds=900)
    tq = task_queue()
    now = [0.0]
    ingestor = Ingestor(
        dev_env.client,
        sessionmaker,
        account,
        config=config,
        task_queue=tq,
        chat_hash_key=b"k",
        clock=lambda: now[0],
        schedule=lambda delay, callback: None,
    )
    client = offline_client()
    listener = TelegramListener(
        client, ingestor, PostgresSession(sessionmaker, key, box=TEST_BOX), sessionmaker
    )
    listener.start()
    listener.identify(SELF_ID, user_account=False)
    users, chats = [user(ALICE)], [channel(SUPERGROUP), channel(FORUM, forum=True)]

    async def feed(update: object) -> None:
        await client._preprocess_updates([update], users, chats)
        await client._dispatch_update(update)

    # Mentions: answered in groups (unaddressed group messages are only recorded).
    await feed(channel_message(SUPERGROUP, 8, "hey bot", mentioned=True))
    topic_header = types.MessageReplyHeader(reply_to_msg_id=42, forum_topic=True)
    await feed(channel_message(FORUM, 9, "hey bot", mentioned=True, reply_to=topic_header))
    await feed(
        types.UpdateChannelUserTyping(
            channel_id=FORUM,
            from_id=types.PeerUser(ALICE),
            action=types.SendMessageTypingAction(),
            top_msg_id=42,
        )
    )
    assert await listener.drain(within=10) == 0
    # The ingest holds typing until shortly before the quiet period ends (see typing_gate).
    now[0] = 599.0
    assert await ingestor.release_held_typing() == 1
    async with new_worker(dev_env.client, Recorder(), tq):
        await check_conversations(dev_env, ingestor)


async def check_conversations(dev_env: WorkflowEnvironment, ingestor: Ingestor) -> None:
    supergroup_id = ingestor.workflow_id_for(-1000000000000 - SUPERGROUP, None)
    topic_id = ingestor.workflow_id_for(-1000000000000 - FORUM, 42)
    states = {}
    for workflow_id in (supergroup_id, topic_id):
        handle = dev_env.client.get_workflow_handle(workflow_id)
        states[workflow_id] = await handle.query(ConversationWorkflow.state)
        await handle.terminate("test over")
    assert states[supergroup_id].buffered == 1
    assert states[topic_id].buffered == 1
    # The topic's typing reached the topic's conversation (its author's lease), and only it.
    assert states[topic_id].typing_lease_until is not None
    assert states[supergroup_id].typing_lease_until is None
