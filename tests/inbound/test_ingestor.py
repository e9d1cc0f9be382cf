"""The ingest seam: record in Postgres, then signal-with-start, on a real Temporal server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from db.queries import messages as db_messages
from db.tables import burst, conversation, message
from inbound.accounts import register_account
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor, RejectedMessageError
from inbound.send_queue import send_task_queue
from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, new_worker, until_sent
from workflows.payloads import ConversationConfig

NOW = datetime(2026, 11, 22, tzinfo=UTC)
IDLE_CLOSE = 30


async def assert_no_conversation(
    env: WorkflowEnvironment, ingestor: Ingestor, chat_id: int
) -> None:
    handle = env.client.get_workflow_handle(ingestor.workflow_id_for(chat_id))
    with pytest.raises(RPCError):
        await handle.describe()


async def make_ingestor(
    env: WorkflowEnvironment,
    sm: async_sessionmaker[AsyncSession],
    tq: str,
    config: ConversationConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
    schedule: Callable[[float, Callable[[], None]], object] | None = None,
) -> Ingestor:
    key = f"seam-{uuid.uuid4().hex[:8]}"
    account = await register_account(sm, key=key, kind="replay", display_name=key)
    return Ingestor(
        env.client,
        sm,
        account,
        config=config or ConversationConfig(1, 10, IDLE_CLOSE),
        task_queue=tq,
        chat_hash_key=b"k",
        clock=clock,
        schedule=schedule,
    )


async def ingestor_on_hand_clock(
    env: WorkflowEnvironment, sm: async_sessionmaker[AsyncSession], tq: str, now: list[float]
) -> Ingestor:
    """An ingestor with a 5 s quiet period on a clock the test moves (``now[0]``); held
    chat actions are never released by a timer, only by what the test does."""
    return await make_ingestor(
        env, sm, tq, ConversationConfig(5, 10, IDLE_CLOSE), lambda: now[0], lambda d, f: None
    )


async def test_a_message_is_recorded_then_signalled(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tq, rec = task_queue(), Recorder()
    ingestor = await make_ingestor(time_env, sessionmaker, tq)
    sends = new_worker(time_env.client, rec, send_task_queue(tq, ingestor.account.key))
    async with new_worker(time_env.client, rec, tq), sends:
        result = await ingestor.message(IncomingMessage(77, 5, 1, "  hi there ", NOW))
        assert result.signalled
        await until_sent(time_env, rec)
        handle = time_env.client.get_workflow_handle(result.workflow_id)
    assert rec.bursts() == [[1]]
    async with sessionmaker() as session:
        text = await session.execute(
            select(message.c.text).where(message.c.account_id == ingestor.account.id)
        )
        assert text.scalar_one() == "hi there"
    # Message text never enters Temporal: the history holds ids and lengths only.
    history = await handle.fetch_history()
    assert "hi there" not in history.to_json()


async def test_no_telegram_chat_or_user_id_reaches_temporal(
    dev_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Distinctive ids, so that a match in the history is never a timestamp by chance.
    chat, user, topic = -1009876543210, 5550001112223, 4440
    tq, rec = task_queue(), Recorder()
    ingestor = await make_ingestor(dev_env, sessionmaker, tq)
    sends = new_worker(dev_env.client, rec, send_task_queue(tq, ingestor.account.key))
    async with new_worker(dev_env.client, rec, tq), sends:
        result = await ingestor.message(
            IncomingMessage(chat, user, 1, "hi", NOW, topic_id=topic), on_recorded=lambda: None
        )
        await ingestor.typing(chat_id=chat, sender_id=user, action="typing", topic_id=topic)
        await ingestor.message(IncomingMessage(chat, user, 2, "there", NOW, topic_id=topic))
        for _ in range(100):
            if rec.sent:
                break
            await asyncio.sleep(0.1)
        handle = dev_env.client.get_workflow_handle(result.workflow_id)
        described = await handle.describe()
        history = (await handle.fetch_history()).to_json()
        await handle.terminate("test over")
    assert rec.bursts() == [[1, 2]]
    for raw in (str(abs(chat)), str(user), "9876543210"):
        assert raw not in result.workflow_id
        assert raw not in history, raw
        assert raw not in str(described.typed_search_attributes)
        assert raw not in str(described.static_summary)
    # The mapping back to the chat is in Postgres.
    async with sessionmaker() as session:
        mapped = await session.execute(
            select(conversation.c.chat_id, conversation.c.topic_id).where(
                conversation.c.account_id == ingestor.account.id,
                conversation.c.chat_ref == result.workflow_id.rsplit("/c-", 1)[1],
            )
        )
        assert tuple(mapped.one()) == (chat, topic)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_empty_messages_are_rejected_and_never_buffered(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession], text: str
) -> None:
    tq = task_queue()
    ingestor = await make_ingestor(time_env, sessionmaker, tq)
    with pytest.raises(RejectedMessageError, match="empty"):
        await ingestor.message(IncomingMessage(77, 5, 1, text, NOW))
    async with sessionmaker() as session:
        rows = await session.execute(
            select(func.count()).where(message.c.account_id == ingestor.account.id)
        )
        assert rows.scalar_one() == 0
    await assert_no_conversation(time_env, ingestor, chat_id=77)


async def test_an_answered_message_delivered_again_is_not_signalled(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tq, rec = task_queue(), Recorder()
    ingestor = await make_ingestor(time_env, sessionmaker, tq)
    msg = IncomingMessage(77, 5, 1, "hi", NOW)
    sends = new_worker(time_env.client, rec, send_task_queue(tq, ingestor.account.key))
    async with new_worker(time_env.client, rec, tq), sends:
        await ingestor.message(msg)
        await until_sent(time_env, rec)
    # Mark it answered, as persist_burst does, then let the channel deliver it again.
    async with sessionmaker() as session, session.begin():
        burst_id = (
            await session.execute(
                burst.insert()
                .values(
                    burst_key=f"k-{uuid.uuid4()}",
                    conversation_id=select(message.c.conversation_id)
                    .where(message.c.account_id == ingestor.account.id)
                    .scalar_subquery(),
                    message_ids=[1],
                    reason="quiet",
                    first_message_at=NOW,
                    last_message_at=NOW,
                    flushed_at=NOW,
                )
                .returning(burst.c.id)
            )
        ).scalar_one()
        await session.execute(
            update(message)
            .where(message.c.account_id == ingestor.account.id)
            .values(burst_id=burst_id)
        )
    again = await ingestor.message(msg)
    assert again.signalled is False
    assert rec.bursts() == [[1]]


async def test_typing_never_starts_a_conversation(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ingestor = await make_ingestor(time_env, sessionmaker, task_queue())
    told = await ingestor.typing(chat_id=77, sender_id=5, action="typing")
    assert told is False
    await assert_no_conversation(time_env, ingestor, chat_id=77)


async def test_a_held_chat_action_reaches_the_conversation_before_the_quiet_period_ends(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tq, rec = task_queue(), Recorder()
    now, timers = [100.0], []
    config = ConversationConfig(5, 10, IDLE_CLOSE, typing_windows={"record_audio": 30})
    ingestor = await make_ingestor(
        time_env, sessionmaker, tq, config, lambda: now[0], lambda d, f: timers.append(d)
    )
    async with new_worker(time_env.client, rec, tq):
        result = await ingestor.message(IncomingMessage(77, 5, 1, "hi", NOW))
        now[0] += 0.5
        # Held: the author's next message would make it moot. Due 1 s before the quiet
        # period ends (100 + 5 - 1), so its timer is set 3.5 s out.
        assert await ingestor.typing(chat_id=77, sender_id=5, action="record_audio") is False
        assert timers == [3.5]
        assert await ingestor.release_held_typing() == 0  # not yet due
        now[0] += 3.5
        assert await ingestor.release_held_typing() == 1
        state = await time_env.client.get_workflow_handle(result.workflow_id).query("state")
    assert state["deadline_rule"] == "typing lease"
    # The lease runs 30 s from when the action was seen, 3.5 s before it was signalled.
    # Only the test's clock moved, not the workflow's: so it ends 26.5 s after the message.
    lease = datetime.fromisoformat(state["typing_lease_until"])
    last = datetime.fromisoformat(state["last_message_at"])
    assert 26.0 <= (lease - last).total_seconds() <= 27.0


async def test_an_unknown_chat_action_is_a_clear_error(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ingestor = await make_ingestor(time_env, sessionmaker, task_queue())
    with pytest.raises(ValueError, match="unknown chat action 'dancing'"):
        await ingestor.typing(chat_id=77, sender_id=5, action="dancing")


async def test_edits_and_deletes_are_recorded_and_answered_messages_not_resignalled(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tq, rec = task_queue(), Recorder()
    ingestor = await make_ingestor(time_env, sessionmaker, tq)
    async with new_worker(time_env.client, rec, tq):
        await ingestor.message(IncomingMessage(77, 5, 1, "helo", NOW))
        await ingestor.message(IncomingMessage(77, 5, 2, "oops", NOW))
        assert await ingestor.edit(chat_id=77, message_id=1, text="hello", edited_at=NOW)
        assert await ingestor.delete(chat_id=77, message_ids=[2], deleted_at=NOW)
        # Never recorded: nothing to edit; no conversation is started for it.
        assert not await ingestor.edit(chat_id=78, message_id=5, text="x", edited_at=NOW)
        with pytest.raises(RejectedMessageError, match="empty"):
            await ingestor.edit(chat_id=77, message_id=1, text=" ", edited_at=NOW)
    async with sessionmaker() as session:
        rows = await session.execute(
            select(message.c.message_id, message.c.text, message.c.edited_at, message.c.deleted_at)
            .where(message.c.account_id == ingestor.account.id)
            .order_by(message.c.message_id)
        )
        (one, two) = rows.all()
    assert (one.text, one.edited_at, one.deleted_at) == ("hello", NOW, None)
    assert two.deleted_at == NOW
    await assert_no_conversation(time_env, ingestor, chat_id=78)


async def test_typing_that_the_authors_next_message_makes_moot_is_never_signalled(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from temporalio.api.enums.v1 import EventType

    tq, rec = task_queue(), Recorder()
    now = [100.0]
    ingestor = await ingestor_on_hand_clock(time_env, sessionmaker, tq, now)
    async with new_worker(time_env.client, rec, tq):
        result = await ingestor.message(IncomingMessage(77, 5, 1, "hi", NOW))
        for message_id in (2, 3, 4):
            for _ in range(3):  # clients repeat the action while the user types
                now[0] += 0.4
                assert not await ingestor.typing(chat_id=77, sender_id=5, action="typing")
            await ingestor.message(IncomingMessage(77, 5, message_id, "more", NOW))
            assert await ingestor.release_held_typing() == 0
        # Typing with no message after it: signalled once, when it can still matter.
        await ingestor.typing(chat_id=77, sender_id=5, action="typing")
        now[0] += 4.0
        assert await ingestor.release_held_typing() == 1
        # A cancel after that lease was signalled ends it at once; a second one is moot.
        assert await ingestor.typing(chat_id=77, sender_id=5, action="cancel")
        assert not await ingestor.typing(chat_id=77, sender_id=5, action="cancel")
        await time_env.sleep(1)  # let the workflow take in what was signalled
        history = await time_env.client.get_workflow_handle(result.workflow_id).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == ["message_received"] * 4 + ["typing_observed"] * 2


async def test_an_edit_restarts_the_deadline_typing_is_held_against(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tq, rec = task_queue(), Recorder()
    now = [100.0]
    ingestor = await ingestor_on_hand_clock(time_env, sessionmaker, tq, now)
    async with new_worker(time_env.client, rec, tq):
        await ingestor.message(IncomingMessage(77, 5, 1, "hi", NOW))
        now[0] += 4.0
        assert await ingestor.edit(chat_id=77, message_id=1, text="hello", edited_at=NOW)
        # The message's quiet period ended at 105; the edit's ends at 109, so typing at
        # 108.5 can still hold the burst and is signalled.
        now[0] += 4.5
        assert await ingestor.typing(chat_id=77, sender_id=5, action="typing") is True


async def test_typing_is_not_signalled_once_the_chats_burst_is_due(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from temporalio.api.enums.v1 import EventType

    tq, rec = task_queue(), Recorder()
    now = [100.0]
    ingestor = await ingestor_on_hand_clock(time_env, sessionmaker, tq, now)
    async with new_worker(time_env.client, rec, tq):
        # Typing before the first message: nothing is buffered, nothing is signalled.
        assert await ingestor.typing(chat_id=77, sender_id=5, action="typing") is False
        result = await ingestor.message(IncomingMessage(77, 5, 1, "hi", NOW))
        # Within the lead before the quiet period ends (5 s): signalled, a lease to 110.5.
        now[0] += 4.5
        assert await ingestor.typing(chat_id=77, sender_id=5, action="typing") is True
        # After the lease ended the burst is due: typing then (users type before the
        # next burst's first message) would hold nothing, and costs no signal.
        now[0] += 6.0
        assert await ingestor.typing(chat_id=77, sender_id=5, action="record_audio") is False
        await time_env.sleep(1)
        history = await time_env.client.get_workflow_handle(result.workflow_id).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == ["message_received", "typing_observed"]


async def test_a_recorded_message_whose_signal_was_lost_is_swept_up_and_answered(
    dev_env: WorkflowEnvironment,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Recorded in Postgres, its signal lost (a Temporal that lost its last commits): no
    # run will ever flush it unless the ingest's sweep signals it again.
    from datetime import timedelta

    tq, rec = task_queue(), Recorder()
    ingestor = await make_ingestor(dev_env, sessionmaker, tq)
    async with sessionmaker() as session, session.begin():
        await db_messages.record_incoming(
            session,
            account_id=ingestor.account.id,
            chat_id=77,
            topic_id=None,
            message_id=9,
            sender_id=5,
            text="anyone?",
            kind="text",
            sent_at=NOW,
            chat_ref=ingestor.address.chat_ref(77, None),
        )
    sends = new_worker(dev_env.client, rec, send_task_queue(tq, ingestor.account.key))
    async with new_worker(dev_env.client, rec, tq), sends:
        assert await ingestor.resend_unflushed(older_than=timedelta(minutes=5)) == 0  # fresh
        assert await ingestor.resend_unflushed(older_than=timedelta(0)) == 1
        await until_sent(dev_env, rec)
        # Its run has it now (the recorder writes no burst row, so Postgres still calls it
        # unflushed): the sweep asks the run and sends nothing.
        assert await ingestor.resend_unflushed(older_than=timedelta(0)) == 0
        await asyncio.sleep(2)
    assert rec.bursts() == [[9]] and len(rec.sent) == 1
    assert any("its signal never arrived" in r.getMessage() for r in caplog.records)


async def test_a_burst_stranded_by_a_run_lost_mid_burst_is_taken_up_under_its_key(
    dev_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Persisted, never answered, and no run left that knows it (Temporal lost the run
    mid-burst): past the time any live run takes, the sweep signals its messages again,
    and the new run flushes them under the same key, so the stranded row is answered once."""
    from datetime import timedelta

    from db.queries import bursts as db_bursts
    from workflows.ids import burst_key

    tq, rec = task_queue(), Recorder()
    ingestor = await make_ingestor(dev_env, sessionmaker, tq)
    async with sessionmaker() as session, session.begin():
        conversation_id, _ = await db_messages.record_incoming(
            session,
            account_id=ingestor.account.id,
            chat_id=78,
            topic_id=None,
            message_id=11,
            sender_id=5,
            text="still there?",
            kind="text",
            sent_at=NOW,
            chat_ref=ingestor.address.chat_ref(78, None),
        )
        stranded = burst_key(ingestor.address.workflow_id(78, None), [11])
        burst_id, _ = await db_bursts.insert_burst(
            session,
            burst_key=stranded,
            conversation_id=conversation_id,
            message_ids=[11],
            reason="quiet",
            context_epoch=0,
            first_message_at=NOW,
            last_message_at=NOW,
            flushed_at=NOW,
        )
        await db_bursts.assign_messages(
            session, burst_id=burst_id, conversation_id=conversation_id, message_ids=[11]
        )
    sends = new_worker(dev_env.client, rec, send_task_queue(tq, ingestor.account.key))
    async with new_worker(dev_env.client, rec, tq), sends:
        # Held by a burst: not a lost signal, and not stranded until long after its flush.
        assert await ingestor.resend_unflushed(older_than=timedelta(0)) == 0
        far = timedelta(days=3650)
        assert await ingestor.resend_unflushed(older_than=timedelta(0), stranded_after=far) == 0
        stranded_after = timedelta(minutes=1)
        assert (
            await ingestor.resend_unflushed(older_than=timedelta(0), stranded_after=stranded_after)
            == 1
        )
        await until_sent(dev_env, rec)
        # Again while the new run answers it, or after: its run has seen the id.
        assert (
            await ingestor.resend_unflushed(older_than=timedelta(0), stranded_after=stranded_after)
            == 0
        )
        await asyncio.sleep(2)
    assert [p.burst_key for p in rec.persisted] == [stranded]
    assert len(rec.sent) == 1


async def test_the_sweep_sends_a_held_backlog_nothing_and_a_lost_one_in_signals_of_50(
    dev_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A chat's backlog waits behind a slow burst (an LLM outage holds it up to the
    outage window). The sweep used to resend all of it every round, one signal of up to
    500 messages each time, until a workflow task decoding them outlasted the SDK's
    deadlock timeout and the chat wedged for good. Now it asks the run and sends only
    what the run lacks, in signals of at most 50 messages."""
    from datetime import timedelta

    from temporalio.api.enums.v1 import EventType

    from inbound.ingestor import MAX_MESSAGES_PER_SIGNAL
    from workflows.payloads import MessageReceived, MessagesReceived

    async def record(message_id: int) -> None:
        async with sessionmaker() as session, session.begin():
            await db_messages.record_incoming(
                session,
                account_id=ingestor.account.id,
                chat_id=79,
                topic_id=None,
                message_id=message_id,
                sender_id=5,
                text=f"m{message_id}",
                kind="text",
                sent_at=NOW,
                chat_ref=ingestor.address.chat_ref(79, None),
            )

    async def signal_sizes(total: int) -> list[int]:
        """The messages each signal carried, once ``total`` were written to the history
        (the server writes a signal that came during a workflow task after the task)."""
        for _ in range(100):
            sizes = await signalled()
            if sum(sizes) >= total:
                return sizes
            await asyncio.sleep(0.1)
        return sizes

    async def signalled() -> list[int]:
        history = await handle.fetch_history()
        converter = dev_env.client.data_converter.payload_converter
        sizes = []
        for e in history.events:
            if e.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                continue
            attrs = e.workflow_execution_signaled_event_attributes
            kind = MessagesReceived if attrs.signal_name == "messages_received" else MessageReceived
            [arg] = converter.from_payloads(attrs.input.payloads, [kind])
            sizes.append(len(arg.messages) if isinstance(arg, MessagesReceived) else 1)
        return sizes

    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    ingestor = await make_ingestor(dev_env, sessionmaker, tq)
    handle = dev_env.client.get_workflow_handle(ingestor.workflow_id_for(79))
    for message_id in range(1, 121):  # recorded, their signals lost: no run knows them
        await record(message_id)
    sends = new_worker(dev_env.client, rec, send_task_queue(tq, ingestor.account.key))
    async with new_worker(dev_env.client, rec, tq), sends:
        assert await ingestor.resend_unflushed(older_than=timedelta(0)) == 120
        assert MAX_MESSAGES_PER_SIGNAL == 50
        assert await signal_sizes(120) == [50, 50, 20]
        while not rec.generating:  # noqa: ASYNC110 - the first burst's LLM call hangs
            await asyncio.sleep(0.05)
        # The run holds the backlog: round after round, nothing is sent again.
        for _ in range(3):
            assert await ingestor.resend_unflushed(older_than=timedelta(0)) == 0
        # One message the run never got (its signal lost) is sent, alone.
        await record(121)
        assert await ingestor.resend_unflushed(older_than=timedelta(0)) == 1
        assert await signal_sizes(121) == [50, 50, 20, 1]
        assert rec.slow_llm is not None
        rec.slow_llm.set()
        await until_sent(dev_env, rec, bursts=13)
    assert [i for b in rec.bursts() for i in b] == list(range(1, 122))
    assert len(rec.sent) == len(rec.persisted) == 13


async def test_a_conversation_is_told_the_settings_once_and_again_after_a_change(
    dev_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The first message of a conversation from this process carries the settings, later
    ones do not, and the first after a reconfigure carries the new ones. On the dev
    server: skipped time would close the run between messages."""
    from temporalio.api.enums.v1 import EventType

    from workflows.payloads import MessageReceived

    tq = task_queue()
    ingestor = await make_ingestor(dev_env, sessionmaker, tq, ConversationConfig(30, 10, 60))
    async with new_worker(dev_env.client, Recorder(), tq):
        for message_id in (1, 2):
            await ingestor.message(IncomingMessage(88, 5, message_id, "hi", NOW))
        slower = ConversationConfig(45, 3, 60)
        ingestor.reconfigure(slower, frozenset({"start", "help", "refresh", "book"}))
        ingestor.reconfigure(slower, frozenset({"start", "help", "refresh", "book"}))
        for message_id in (3, 4):
            await ingestor.message(IncomingMessage(88, 5, message_id, "hi", NOW))
        handle = dev_env.client.get_workflow_handle(ingestor.workflow_id_for(88))
        signals: list[Any] = []
        # A signal that lands during a workflow task is written to the history after it.
        async with asyncio.timeout(10):
            while len(signals) < 4:
                signals = [
                    event.workflow_execution_signaled_event_attributes
                    for event in (await handle.fetch_history()).events
                    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                ]
    converter = dev_env.client.data_converter
    carried = []
    for attrs in signals:
        assert attrs.signal_name == "message_received"  # each awaited: never batched
        (received,) = await converter.decode(attrs.input.payloads, [MessageReceived])
        carried.append(received.config)
    assert carried == [ConversationConfig(30, 10, 60), None, slower, None]
    assert ingestor.config == slower and "book" in ingestor.commands
