"""Each activity, run twice with the same input, has the effect of running once (real Postgres)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.bursts import BurstActivities
from activities.replies import ReplyActivities, ReplyOptions
from activities.sending import SendActivities
from channels.base import SendTarget
from db.queries import conversations as db_conversations
from db.queries import failures as db_failures
from db.queries import messages as db_messages
from db.tables import account, burst, delivery, message, reply
from llm.base import Completion, Prompt
from llm.echo import EchoProvider
from workflows.commands import REFRESH_REPLY
from workflows.ids import burst_key
from workflows.payloads import GenerateReplyInput, PersistBurstInput, SendReplyInput

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OPTIONS = ReplyOptions(default_model="m", default_system_prompt="be brief", history_bursts=5)


class CountingProvider:
    """The echo provider, counting calls and keeping the prompts it saw."""

    name = "counting"

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []
        self.models: list[str] = []

    async def complete(self, prompt: Prompt, *, model: str) -> Completion:
        self.prompts.append(prompt)
        self.models.append(model)
        return await EchoProvider().complete(prompt, model=model)


class RecordingSender:
    max_chars = 4096

    def __init__(self) -> None:
        self.sends: list[tuple[SendTarget, str, int]] = []

    async def send(self, target: SendTarget, text: str, *, random_id: int) -> int | None:
        self.sends.append((target, text, random_id))
        return 1000 + len(self.sends)


async def seed(
    sm: async_sessionmaker[AsyncSession],
    account_id: int,
    texts: list[str],
    *,
    chat: int = 5,
    first_id: int = 1,
) -> tuple[int, list[int]]:
    conv, ids = 0, []
    async with sm() as session, session.begin():
        for offset, text in enumerate(texts):
            mid = first_id + offset
            conv, _ = await db_messages.record_incoming(
                session,
                account_id=account_id,
                chat_id=chat,
                topic_id=None,
                message_id=mid,
                sender_id=9,
                text=text,
                kind="text",
                sent_at=NOW,
            )
            ids.append(mid)
    return conv, ids


def persist_input(conv: int, ids: list[int], flushed_at: datetime = NOW) -> PersistBurstInput:
    return PersistBurstInput(
        conversation_id=conv,
        burst_key=burst_key(f"w{conv}", ids),
        message_ids=ids,
        reason="quiet",
        first_message_at=NOW,
        last_message_at=NOW,
        flushed_at=flushed_at,
    )


async def count(sm: async_sessionmaker[AsyncSession], stmt) -> int:  # type: ignore[no-untyped-def]
    async with sm() as session:
        return int((await session.execute(stmt)).scalar_one())


async def test_persist_burst_twice_changes_nothing_the_second_time(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["hi", "there"])
    acts = BurstActivities(sessionmaker)
    env = ActivityEnvironment()
    first = await env.run(acts.persist_burst, persist_input(conv, ids))
    second = await env.run(acts.persist_burst, persist_input(conv, ids))
    assert first == second
    assert first.message_count == 2
    assert (
        await count(sessionmaker, select(func.count()).where(burst.c.conversation_id == conv)) == 1
    )
    assigned = select(func.count()).where(message.c.burst_id == first.burst_id)
    assert await count(sessionmaker, assigned) == 2


async def test_generate_reply_calls_the_llm_once_per_burst(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["book me", "a haircut"])
    env = ActivityEnvironment()
    persisted = await env.run(BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids))
    provider = CountingProvider()
    acts = ReplyActivities(sessionmaker, provider, OPTIONS)
    key = burst_key(f"w{conv}", ids)
    first = await env.run(acts.generate_reply, GenerateReplyInput(key))
    second = await env.run(acts.generate_reply, GenerateReplyInput(key))
    assert len(provider.prompts) == 1
    assert (first.reused, second.reused) == (False, True)
    assert first.reply_id == second.reply_id
    assert provider.prompts[0].burst == ["book me", "a haircut"]
    assert provider.prompts[0].system == "be brief"
    rows = select(func.count()).where(reply.c.burst_id == persisted.burst_id)
    assert await count(sessionmaker, rows) == 1
    status = select(burst.c.status).where(burst.c.id == persisted.burst_id)
    async with sessionmaker() as session:
        assert (await session.execute(status)).scalar_one() == "replied"


async def test_token_usage_and_cost_are_stored(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    from decimal import Decimal

    conv, ids = await seed(sessionmaker, account_id, ["price", "me"])
    env = ActivityEnvironment()
    persisted = await env.run(BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids))
    options = ReplyOptions(
        default_model="m",
        default_system_prompt="be brief",
        history_bursts=0,
        price_prompt_per_1k=Decimal("2"),
        price_completion_per_1k=Decimal("10"),
    )
    provider = CountingProvider()
    await env.run(
        ReplyActivities(sessionmaker, provider, options).generate_reply,
        GenerateReplyInput(burst_key(f"w{conv}", ids)),
    )
    async with sessionmaker() as session:
        row = (
            await session.execute(select(reply).where(reply.c.burst_id == persisted.burst_id))
        ).one()
    assert row.prompt_tokens == 4  # "be brief" + "price" + "me", counted by the echo provider
    assert row.completion_tokens == len(row.text.split())
    expected = (Decimal(2) * row.prompt_tokens + Decimal(10) * row.completion_tokens) / 1000
    assert row.cost == expected
    assert row.model == "echo"


async def test_prompt_carries_the_conversations_recent_history(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    env = ActivityEnvironment()
    provider = CountingProvider()
    replies = ReplyActivities(sessionmaker, provider, OPTIONS)
    bursts = BurstActivities(sessionmaker)
    conv, first_ids = await seed(sessionmaker, account_id, ["hi", "can you"])
    await env.run(bursts.persist_burst, persist_input(conv, first_ids))
    await env.run(replies.generate_reply, GenerateReplyInput(burst_key(f"w{conv}", first_ids)))
    _, second_ids = await seed(sessionmaker, account_id, ["tomorrow?"], first_id=3)
    await env.run(bursts.persist_burst, persist_input(conv, second_ids))
    await env.run(replies.generate_reply, GenerateReplyInput(burst_key(f"w{conv}", second_ids)))
    second_prompt = provider.prompts[1]
    assert second_prompt.history == [("hi\ncan you", "[echo: 2 messages] hi can you")]
    assert second_prompt.burst == ["tomorrow?"]


async def test_prompt_takes_the_accounts_model_and_prompt_and_the_live_messages_in_order(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(account)
            .where(account.c.id == account_id)
            .values(model="acct-model", system_prompt="talk like a pirate")
        )
    conv, ids = await seed(sessionmaker, account_id, ["one", "two", "three"], first_id=7)
    await ActivityEnvironment().run(
        BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids)
    )
    async with sessionmaker() as session, session.begin():
        await db_messages.record_deletes(
            session, account_id=account_id, chat_id=5, message_ids=[8], deleted_at=NOW
        )
    provider = CountingProvider()
    await ActivityEnvironment().run(
        ReplyActivities(sessionmaker, provider, OPTIONS).generate_reply,
        GenerateReplyInput(burst_key(f"w{conv}", ids)),
    )
    assert provider.models == ["acct-model"]
    assert provider.prompts[0].system == "talk like a pirate"
    assert provider.prompts[0].burst == ["one", "three"]


async def test_send_reply_twice_delivers_each_chunk_once(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["x" * 30, "y" * 30])
    env = ActivityEnvironment()
    await env.run(BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids))
    key = burst_key(f"w{conv}", ids)
    await env.run(
        ReplyActivities(sessionmaker, CountingProvider(), OPTIONS).generate_reply,
        GenerateReplyInput(key),
    )
    sender = RecordingSender()
    sender.max_chars = 40  # the echo reply is ~80 chars: two chunks
    acts = SendActivities(sessionmaker, sender)
    first = await env.run(acts.send_reply, SendReplyInput(key))
    second = await env.run(acts.send_reply, SendReplyInput(key))
    assert (first.chunks, first.newly_sent) == (3, 3)
    assert (second.chunks, second.newly_sent) == (3, 0)
    assert len(sender.sends) == 3
    assert len({rid for _, _, rid in sender.sends}) == 3
    assert sender.sends[0][0].reply_to == max(ids)
    assert all(len(text) <= 40 for _, text, _ in sender.sends)
    rows = (
        select(func.count())
        .select_from(delivery.join(reply))
        .where(
            reply.c.burst_id == select(burst.c.id).where(burst.c.burst_key == key).scalar_subquery()
        )
    )
    assert await count(sessionmaker, rows) == 3
    async with sessionmaker() as session:
        status = await session.execute(select(burst.c.status).where(burst.c.burst_key == key))
        assert status.scalar_one() == "sent"


async def test_send_reply_without_a_reply_or_burst_fails_for_good(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["hi"])
    env = ActivityEnvironment()
    await env.run(BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids))
    acts = SendActivities(sessionmaker, RecordingSender())
    for key, what in ((burst_key(f"w{conv}", ids), "reply of burst"), ("b-nope", "burst b-nope")):
        with pytest.raises(ApplicationError) as err:
            await env.run(acts.send_reply, SendReplyInput(key))
        assert err.value.non_retryable and f"{what} " in str(err.value)


async def test_a_burst_whose_messages_were_all_deleted_is_dropped(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["never mind"])
    async with sessionmaker() as session, session.begin():
        await db_messages.record_deletes(
            session, account_id=account_id, chat_id=5, message_ids=ids, deleted_at=NOW
        )
    result = await ActivityEnvironment().run(
        BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids)
    )
    assert result.message_count == 0
    async with sessionmaker() as session:
        row = (await session.execute(select(burst).where(burst.c.id == result.burst_id))).one()
        pending = await db_messages.pending_message_count(session, account_id)
    assert (row.status, row.error_type) == ("dropped", "deleted")
    assert pending == 0


async def test_signalled_messages_postgres_has_no_row_of_are_reported_never_silently_lost(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Postgres failed over to a replica that lost its last commits: the workflow holds
    # message ids whose rows are gone. Once they read as "deleted", said nowhere.
    conv, ids = await seed(sessionmaker, account_id, ["kept", "lost", "lost too"])
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(message).where(message.c.message_id.in_(ids[1:])))
    result = await ActivityEnvironment().run(
        BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids)
    )
    assert result.message_count == 1  # the rest is answered
    lost = [r for r in caplog.records if "LOST MESSAGES" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelname == "ERROR"
    assert f"ids {ids[1:]}" in lost[0].getMessage() and "lost too" not in lost[0].getMessage()
    async with sessionmaker() as session:
        alerts = await db_failures.alerts(session, account_id)
    assert [a.kind for a in alerts if a.kind == "MessagesMissing"] != []
    # All of them gone: dropped as missing, not as deleted.
    conv2, gone = await seed(sessionmaker, account_id, ["gone"], chat=6)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(message).where(message.c.conversation_id == conv2))
    result = await ActivityEnvironment().run(
        BurstActivities(sessionmaker).persist_burst, persist_input(conv2, gone)
    )
    async with sessionmaker() as session:
        row = (await session.execute(select(burst).where(burst.c.id == result.burst_id))).one()
    assert (row.status, row.error_type) == ("dropped", "missing")


async def test_a_burst_dropped_as_missing_is_answered_once_its_messages_are_back(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    """The rows came back: the listener recorded the message again from Telegram (a
    catch-up after the failover), and the sweep signalled it to a new run, which flushes
    it under the same key. The burst reported LOST is reopened and answered, not left
    dropped with its message in it (seen in the 20-minute chaos run as a lost message, and
    a generate_reply that heartbeat forever waiting for a reply that could not come)."""
    conv, ids = await seed(sessionmaker, account_id, ["came back"], chat=12)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(message).where(message.c.conversation_id == conv))
    env, acts = ActivityEnvironment(), BurstActivities(sessionmaker)
    dropped = await env.run(acts.persist_burst, persist_input(conv, ids))
    assert dropped.message_count == 0
    await seed(sessionmaker, account_id, ["came back"], chat=12)  # recorded again
    again = await env.run(acts.persist_burst, persist_input(conv, ids))
    assert (again.burst_id, again.message_count) == (dropped.burst_id, 1)
    assert (await statuses(sessionmaker, conv))[again.burst_id] == ("persisted", None)
    replies = ReplyActivities(sessionmaker, CountingProvider(), OPTIONS)
    made = await env.run(
        replies.generate_reply, GenerateReplyInput(persist_input(conv, ids).burst_key)
    )
    assert made.chars > 0 and not made.reused


async def test_a_reply_asked_of_a_burst_that_moved_on_without_one_fails_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    """Another attempt held the call's claim, then the burst was dropped (or failed) with
    no reply: the waiting attempt fails, not retried, instead of waiting forever."""
    from db.queries import bursts as db_bursts
    from workflows.error_types import ErrorType

    conv, ids = await seed(sessionmaker, account_id, ["hello"], chat=13)
    env = ActivityEnvironment()
    persisted = await env.run(BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids))
    async with sessionmaker() as session, session.begin():
        assert await db_bursts.claim_generation(session, persisted.burst_id, seconds=60)
        await session.execute(
            update(burst).where(burst.c.id == persisted.burst_id).values(status="dropped")
        )
    provider = CountingProvider()
    replies = ReplyActivities(sessionmaker, provider, OPTIONS)
    key = persist_input(conv, ids).burst_key
    with pytest.raises(ApplicationError) as refused:
        await asyncio.wait_for(env.run(replies.generate_reply, GenerateReplyInput(key)), 10)
    assert refused.value.type == ErrorType.BURST_CLOSED and refused.value.non_retryable
    assert provider.prompts == []


async def test_builtin_commands_are_answered_without_the_llm(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    from db.tables import conversation

    env = ActivityEnvironment()
    provider = CountingProvider()
    replies = ReplyActivities(sessionmaker, provider, OPTIONS)
    bursts = BurstActivities(sessionmaker)

    async def answer(texts: list[str], first_id: int, command: str | None = None) -> str:
        conv, ids = await seed(sessionmaker, account_id, texts, first_id=first_id)
        reason = "command" if command else "quiet"
        inp = replace(persist_input(conv, ids), reason=reason, command=command)
        await env.run(bursts.persist_burst, inp)
        await env.run(replies.generate_reply, GenerateReplyInput(inp.burst_key))
        await env.run(replies.generate_reply, GenerateReplyInput(inp.burst_key))  # a retry
        async with sessionmaker() as session:
            row = await session.execute(
                select(reply.c.text, reply.c.model)
                .join(burst, burst.c.id == reply.c.burst_id)
                .where(burst.c.burst_key == inp.burst_key)
            )
            text, model = row.one()
        return f"{model}: {text}"

    assert await answer(["hello"], 1) == "echo: [echo: 1 message] hello"
    assert await answer(["/start"], 2, "start") == "command: Hi! Write to me any time."
    help_reply = await answer(["/help@bot"], 3, "help")
    assert help_reply.startswith("command: Just write") and "/refresh" in help_reply
    assert await answer(["/refresh"], 4, "refresh") == f"command: {REFRESH_REPLY}"
    await answer(["new topic"], 5)
    # Only the two plain bursts reached the LLM; after /refresh the prompt has no history.
    assert [p.burst for p in provider.prompts] == [["hello"], ["new topic"]]
    assert provider.prompts[1].history == []
    async with sessionmaker() as session:
        epoch = await session.execute(
            select(conversation.c.context_epoch).where(conversation.c.account_id == account_id)
        )
        assert epoch.scalar_one() == 1  # bumped once despite the retried activity


async def test_a_paused_or_cleared_burst_is_recorded_as_dropped(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    env = ActivityEnvironment()
    for first_id, why in ((1, "paused"), (2, "cleared")):
        conv, ids = await seed(sessionmaker, account_id, [why], first_id=first_id)
        inp = replace(persist_input(conv, ids), drop_as=why)
        result = await env.run(BurstActivities(sessionmaker).persist_burst, inp)
        await env.run(BurstActivities(sessionmaker).persist_burst, inp)
        async with sessionmaker() as session:
            row = (await session.execute(select(burst).where(burst.c.id == result.burst_id))).one()
        assert (row.status, row.error_type) == ("dropped", why)
    async with sessionmaker() as session:
        assert await db_messages.pending_message_count(session, account_id) == 0


async def test_generate_reply_heartbeats_while_the_llm_thinks(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    import asyncio

    import activities.heartbeat as heartbeat_module

    class SlowProvider(CountingProvider):
        async def complete(self, prompt: Prompt, *, model: str) -> Completion:
            await asyncio.sleep(0.35)
            return await super().complete(prompt, model=model)

    conv, ids = await seed(sessionmaker, account_id, ["think hard"])
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    await env.run(BurstActivities(sessionmaker).persist_burst, persist_input(conv, ids))
    original = heartbeat_module.CALL_HEARTBEAT_EVERY_SECONDS
    heartbeat_module.CALL_HEARTBEAT_EVERY_SECONDS = 0.1
    try:
        acts = ReplyActivities(sessionmaker, SlowProvider(), OPTIONS)
        await env.run(acts.generate_reply, GenerateReplyInput(burst_key(f"w{conv}", ids)))
    finally:
        heartbeat_module.CALL_HEARTBEAT_EVERY_SECONDS = original
    assert len(beats) >= 3


async def test_conversation_keeps_its_latest_message_time(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    from datetime import timedelta

    from db.tables import conversation

    later = NOW + timedelta(minutes=5)
    async with sessionmaker() as session, session.begin():
        for when in (NOW, later, NOW):  # the last is a late retry of an old message
            conv = await db_conversations.ensure_conversation(
                session,
                account_id=account_id,
                chat_id=5,
                topic_id=None,
                owner_user_id=9,
                last_message_at=when,
            )
        await db_conversations.ensure_conversation(
            session, account_id=account_id, chat_id=5, topic_id=None, owner_user_id=9
        )
    async with sessionmaker() as session:
        stored = await session.execute(
            select(conversation.c.last_message_at).where(conversation.c.id == conv)
        )
        assert stored.scalar_one() == later


async def test_a_burst_orphaned_by_a_timed_out_workflow_task_is_superseded(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    """A local persist_burst ran, then its workflow task timed out; the retried task (which
    starts later, so flushes later) applied a signal first and flushed a bigger set under
    another key. The new burst takes the messages and the orphan is dropped, so each
    message is in one burst."""
    conv, ids = await seed(sessionmaker, account_id, ["a", "b", "c", "d"], chat=8)
    acts, env = BurstActivities(sessionmaker), ActivityEnvironment()
    retried_at = NOW + timedelta(seconds=12)
    orphan = await env.run(acts.persist_burst, persist_input(conv, ids[:3]))
    taken = await env.run(acts.persist_burst, persist_input(conv, ids, retried_at))
    assert taken.message_count == 4
    assert await statuses(sessionmaker, conv) == {
        orphan.burst_id: ("dropped", "superseded"),
        taken.burst_id: ("persisted", None),
    }
    assert await owners(sessionmaker, conv) == {taken.burst_id}
    # A late retry of the orphan's own activity (its row is the older one) takes nothing back.
    again = await env.run(acts.persist_burst, persist_input(conv, ids[:3]))
    assert again.message_count == 0


async def test_a_stale_local_activity_running_late_does_not_rob_the_burst_in_use(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    """The timed-out task's worker was slow, not dead: its persist_burst runs after the
    retried task's. Its row is the newest, but its flush time is the older one, so the burst
    the workflow uses keeps every message and the late row is dropped as superseded."""
    conv, ids = await seed(sessionmaker, account_id, ["a", "b", "c"], chat=10)
    acts, env = BurstActivities(sessionmaker), ActivityEnvironment()
    in_use = await env.run(
        acts.persist_burst, persist_input(conv, ids, NOW + timedelta(seconds=12))
    )
    late = await env.run(acts.persist_burst, persist_input(conv, ids[:2]))
    assert (in_use.message_count, late.message_count) == (3, 0)
    assert late.burst_id > in_use.burst_id
    assert await owners(sessionmaker, conv) == {in_use.burst_id}
    assert (await statuses(sessionmaker, conv))[late.burst_id] == ("dropped", "superseded")


async def statuses(sm: async_sessionmaker[AsyncSession], conv: int) -> dict[int, tuple]:  # type: ignore[type-arg]
    async with sm() as session:
        rows = await session.execute(
            select(burst.c.id, burst.c.status, burst.c.error_type).where(
                burst.c.conversation_id == conv
            )
        )
        return {r.id: (r.status, r.error_type) for r in rows}


async def owners(sm: async_sessionmaker[AsyncSession], conv: int) -> set[int]:
    async with sm() as session:
        rows = await session.execute(
            select(message.c.burst_id).where(message.c.conversation_id == conv).distinct()
        )
        return set(rows.scalars())


async def test_a_replied_burst_gives_its_messages_up_only_if_its_sending_never_began(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    """A burst stranded by a run Temporal lost mid-burst: its reply made, never sent. The
    sweep signals its messages to a new run, which flushes them with a newer message under
    another key: the new burst takes them and the stranded one is superseded (its reply is
    never sent). A reply whose sending began (a chunk attempted) keeps its messages."""
    from db.tables import send_attempt

    acts, env = BurstActivities(sessionmaker), ActivityEnvironment()
    replies = ReplyActivities(sessionmaker, CountingProvider(), OPTIONS)
    later = NOW + timedelta(minutes=2)

    conv, ids = await seed(sessionmaker, account_id, ["a", "b"], chat=9)
    stranded = await env.run(acts.persist_burst, persist_input(conv, ids[:1]))
    await env.run(
        replies.generate_reply, GenerateReplyInput(persist_input(conv, ids[:1]).burst_key)
    )
    taking = await env.run(acts.persist_burst, persist_input(conv, ids, later))
    assert taking.message_count == 2
    assert await owners(sessionmaker, conv) == {taking.burst_id}
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(burst.c.status, burst.c.superseded_by).where(burst.c.id == stranded.burst_id)
            )
        ).one()
    assert (row.status, row.superseded_by) == ("superseded", taking.burst_id)

    conv, ids = await seed(sessionmaker, account_id, ["c", "d"], chat=11)
    first = await env.run(acts.persist_burst, persist_input(conv, ids[:1]))
    made = await env.run(
        replies.generate_reply, GenerateReplyInput(persist_input(conv, ids[:1]).burst_key)
    )
    async with sessionmaker() as session, session.begin():
        await session.execute(
            send_attempt.insert().values(reply_id=made.reply_id, chunk_index=0, in_flight_since=NOW)
        )
    second = await env.run(acts.persist_burst, persist_input(conv, ids, later))
    assert (first.message_count, second.message_count) == (1, 1)
    assert (await statuses(sessionmaker, conv))[first.burst_id] == ("replied", None)
