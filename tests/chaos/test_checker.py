"""The chaos checker must see each kind of anomaly; a checker that cannot fail proves nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.tl import types

from db.queries import accounts as db_accounts
from db.queries import bursts as db_bursts
from db.queries import conversations as db_conversations
from db.queries import messages as db_messages
from db.queries import replies as db_replies
from db.tables import burst
from testkit.fake_llm import FakeOpenAI
from testkit.telegram_server.world import World
from tests.chaos.checker import check
from tests.chaos.cluster import BOT, GROUP
from tests.chaos.load import IN_GROUP, TO_BOT, Accepted
from workflows.commands import REFRESH_REPLY, help_text

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Scene:
    """Users' messages in the fake Telegram and their record in Postgres, built by hand."""

    def __init__(self, sm: async_sessionmaker[AsyncSession], account_id: int, key: str) -> None:
        self.sm, self.account_id = sm, account_id
        self.world = World()
        self.world.add_account(BOT, "Lull", bot=True)
        self.accepted = Accepted()
        self.flushes = 0
        self.cluster = SimpleNamespace(
            llm=FakeOpenAI(), telegram=SimpleNamespace(world=self.world), account_key=key
        )

    async def user_sends(self, user: int, *texts: str) -> list[int]:
        ids = []
        for text in texts:
            ids.append(await self.record(user, TO_BOT, text))
            self.accepted.texts.setdefault(user, []).append(text)
        return ids

    async def record(
        self, user: int, peer: types.TypePeer, text: str, *, reason: str | None = None
    ) -> int:
        """``user`` sends ``text`` to ``peer`` and Lull records it, as the listener would."""
        if user not in self.world.accounts:
            self.world.add_account(user, f"U{user}")
        chat = user if isinstance(peer, types.PeerUser) else -GROUP
        self.world.send(user, peer, text)
        # The bot's copy has its own id in the bot's box: that is what Lull records.
        bot_id = self.world.boxes[BOT][-1].id
        async with self.sm() as session, session.begin():
            await db_messages.record_incoming(
                session,
                chat_ref=f"ref{chat}",
                account_id=self.account_id,
                chat_id=chat,
                topic_id=None,
                message_id=bot_id,
                sender_id=user,
                text=text,
                kind="text",
                sent_at=NOW,
                unanswered_reason=reason,
            )
        return bot_id

    async def burst(self, user: int, ids: list[int], status: str) -> str:
        # Each burst flushed a second after the last, as a workflow's tasks follow each other.
        self.flushes += 1
        flushed_at = NOW + timedelta(seconds=self.flushes)
        async with self.sm() as session, session.begin():
            conv = await db_conversations.ensure_conversation(
                session,
                account_id=self.account_id,
                chat_id=user,
                topic_id=None,
                owner_user_id=user,
                chat_ref=f"ref{user}",
            )
            key = f"b-{uuid.uuid4().hex}"
            burst_id, _ = await db_bursts.insert_burst(
                session,
                burst_key=key,
                conversation_id=conv,
                message_ids=ids,
                reason="quiet",
                context_epoch=0,
                first_message_at=NOW,
                last_message_at=NOW,
                flushed_at=flushed_at,
            )
            await db_bursts.assign_messages(
                session, burst_id=burst_id, conversation_id=conv, message_ids=ids
            )
            await db_bursts.set_burst_status(session, burst_id, status, only_from=("persisted",))
        return key

    def bot_says(self, user: int, text: str) -> None:
        self.world.send(BOT, types.PeerUser(user), text)


async def new_scene(sm: async_sessionmaker[AsyncSession]) -> Scene:
    key = f"check-{uuid.uuid4().hex[:8]}"
    async with sm() as session, session.begin():
        account_id = await db_accounts.upsert_account(
            session, key=key, kind="telegram_bot", display_name=key
        )
    return Scene(sm, account_id, key)


async def test_a_clean_record_is_clean(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    scene = await new_scene(sessionmaker)
    ids = await scene.user_sends(1001, "u1m0", "u1m1")
    await scene.burst(1001, ids, "sent")
    scene.bot_says(1001, "re: u1m0\nu1m1")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.clean, report.table()
    assert (report.accepted, report.bursts_sent) == (2, 1)


async def test_each_anomaly_is_reported_in_its_column(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    scene = await new_scene(sessionmaker)
    answered = await scene.user_sends(1001, "u1m0")
    lost = await scene.user_sends(1001, "u1m1")  # recorded, in no burst, never answered
    await scene.burst(1001, answered, "sent")
    scene.bot_says(1001, "re: u1m0")
    scene.bot_says(1001, "re: u1m0")  # a second visible reply
    pending = await scene.user_sends(1002, "u2m0")
    await scene.burst(1002, pending, "replied")  # still not sent at the end
    failed = await scene.user_sends(1003, "u3m0")
    await scene.burst(1003, failed, "failed")
    scene.bot_says(1003, "Sorry, something went wrong.")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.duplicated == ["u1m0: 2 replies, 1 bursts"]
    assert report.lost == ["u1m1: in no burst", "u3m0: failed"]
    assert report.in_doubt == ["u2m0: burst still replied"]
    assert len(report.unexpected) == 2  # the failed burst and the error notice it caused
    assert not report.clean and lost


async def test_a_superseded_orphan_holds_nothing_but_a_stuck_one_is_in_doubt(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A burst flushed by a workflow task that timed out is superseded by the retried task's
    burst (through the real queries): not a second holder. One left unfinished is flagged."""
    scene = await new_scene(sessionmaker)
    ids = await scene.user_sends(1001, "u1m0", "u1m1")
    await scene.burst(1001, ids[:1], "persisted")  # the orphan
    await scene.burst(1001, ids, "sent")  # robs it: dropped as superseded
    scene.bot_says(1001, "re: u1m0 u1m1")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.clean, report.table()
    await scene.burst(1001, ids[1:], "persisted")  # later and unfinished: owns nothing
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert len(report.in_doubt) == 1 and "owns nothing" in report.in_doubt[0]
    assert report.duplicated == ["u1m1: 1 replies, 2 bursts"]


async def test_a_superseded_burst_holds_nothing_and_a_stale_reply_of_it_is_reported(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Superseded through the real queries: its messages move to the burst that took it
    over, so they are held once; a delivery of its discarded reply is a stale reply."""
    scene = await new_scene(sessionmaker)
    ids = await scene.user_sends(1001, "u1m0", "u1m1")
    first = await scene.burst(1001, ids[:1], "persisted")
    async with sessionmaker() as session, session.begin():
        burst_id = await db_bursts.supersede(session, first, rule="superseded (1 of 2)")
        assert burst_id is not None
        reply_id = await db_replies.insert_reply(
            session, burst_id=burst_id, text="re: u1m0", model="m", cost=0
        )
    await scene.burst(1001, ids, "sent")
    scene.bot_says(1001, "re: u1m0 u1m1")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.clean, report.table()
    assert (report.superseded, report.discarded_answers) == (1, 1)
    async with sessionmaker() as session, session.begin():
        assert reply_id is not None
        await db_replies.insert_delivery(
            session, reply_id=reply_id, chunk_index=0, random_id=424242, channel_message_id=9
        )
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.stale_sent == [f"burst {first}: stale reply sent"]
    assert not report.clean


async def test_edits_deletes_and_commands_are_judged_as_a_user_would(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    scene = await new_scene(sessionmaker)
    # "u1m1" was edited to "u1m1e" before its flush: either word answers it, once.
    ids = await scene.user_sends(1001, "u1m0", "u1m1e")
    scene.accepted.texts[1001][-1] = "u1m1"
    scene.accepted.edited["u1m1e"] = "u1m1"
    await scene.burst(1001, ids, "sent")
    scene.bot_says(1001, "re: u1m0\nu1m1e")
    # Deleted before its flush: never answered, rightly.
    await scene.user_sends(1001, "u1m2")
    scene.accepted.deleted.add("u1m2")
    await scene.record(1001, TO_BOT, "/help")
    await scene.record(1001, TO_BOT, "/refresh")
    scene.accepted.commands[1001] = Counter({"help": 1, "refresh": 1})
    scene.bot_says(1001, help_text("Hi.", frozenset({"help", "refresh", "start"})))
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.lost == ["chat 1001: /refresh answered 0 of 1"]
    scene.bot_says(1001, REFRESH_REPLY)
    scene.bot_says(1001, REFRESH_REPLY)
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.duplicated == ["chat 1001: /refresh answered 2×"]
    assert not report.lost and not report.unexpected and not report.in_doubt


async def test_group_chatter_must_be_recorded_and_never_answered(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    scene = await new_scene(sessionmaker)
    scene.world.add_account(1002, "U1002")
    scene.world.add_group(GROUP, "chaos", [BOT, 1001, 1002])
    await scene.record(1001, IN_GROUP, "@lullbot u1m0")
    scene.accepted.texts[-GROUP] = ["u1m0"]
    await scene.record(1002, IN_GROUP, "u2m0", reason="group_chatter")
    scene.accepted.chatter += ["u2m0", "u2m1"]  # the second never recorded
    scene.world.send(BOT, IN_GROUP, "re: @lullbot u1m0\nu2m0")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.lost == ["u2m1: group chatter not recorded"]  # u1m0 was answered
    assert report.unexpected == [f"chat {-GROUP} saw an answer to 'u2m0', never owed one"]


async def test_a_burst_retried_by_ops_may_answer_late_after_an_error_notice(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    scene = await new_scene(sessionmaker)
    first = await scene.user_sends(1001, "u1m0")
    second = await scene.user_sends(1001, "u1m1")
    failed = await scene.burst(1001, first, "failed")  # a FLOOD_WAIT beyond the window
    await scene.burst(1001, second, "sent")
    scene.bot_says(1001, "Sorry, something went wrong.")
    scene.bot_says(1001, "re: u1m1")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.lost == ["u1m0: failed"] and "chat 1001 saw an error notice" in report.unexpected
    # Ops retried it: now sent, answered after the later burst.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(burst).where(burst.c.burst_key == failed).values(status="sent")
        )
    scene.bot_says(1001, "re: u1m0")
    retried = frozenset({failed})
    report = await check(
        scene.cluster,  # type: ignore[arg-type]
        scene.accepted,
        sessionmaker,
        retried=retried,
    )
    assert report.clean, report.table()
    assert (report.retried, report.notices) == (len(retried), 1)
    # Without the retry saying so, the late answer is out of order and the notice unexpected.
    unexcused = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert unexcused.out_of_order and unexcused.unexpected


async def test_the_error_notice_of_a_retried_command_burst_is_expected(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Two /help in one chat: the first failed (a FLOOD_WAIT beyond the window), told the
    # user, and was retried by ops. Commands share their word, so the checker must find
    # the retried burst's chat from its rows, not from the words it keys replies by.
    scene = await new_scene(sessionmaker)
    await scene.burst(1001, await scene.user_sends(1001, "u1m0"), "sent")
    scene.bot_says(1001, "re: u1m0")
    first = await scene.record(1001, TO_BOT, "/help")
    second = await scene.record(1001, TO_BOT, "/help")
    scene.accepted.commands[1001] = Counter({"help": 2})
    failed = await scene.burst(1001, [first], "sent")
    await scene.burst(1001, [second], "sent")
    help_reply = help_text("Hi.", frozenset({"help", "refresh", "start"}))
    scene.bot_says(1001, "Sorry, something went wrong.")
    scene.bot_says(1001, help_reply)
    scene.bot_says(1001, help_reply)
    report = await check(
        scene.cluster,  # type: ignore[arg-type]
        scene.accepted,
        sessionmaker,
        retried=frozenset({failed}),
    )
    assert report.clean, report.table()
    assert report.notices == 1


async def test_a_command_whose_row_vanished_is_excused_once_reported_lost(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    # Postgres lost the row of one /help of two: the workflow reported it LOST (as it
    # does, in the worker's log), so only one help text is owed.
    scene = await new_scene(sessionmaker)
    await scene.burst(1001, await scene.user_sends(1001, "u1m0"), "sent")
    scene.bot_says(1001, "re: u1m0")
    await scene.record(1001, TO_BOT, "/help")
    scene.world.send(1001, TO_BOT, "/help")  # accepted by Telegram; its row then vanished
    scene.accepted.commands[1001] = Counter({"help": 2})
    scene.bot_says(1001, help_text("Hi.", frozenset({"help", "refresh", "start"})))
    scene.cluster.vanished = {(1001, "/help"): 77}
    log = tmp_path / "worker-1.log"
    scene.cluster.processes = [SimpleNamespace(log_path=log)]
    log.write_text("ERROR lull.alerts: LOST MESSAGES: burst b-1 was signalled (ids [76])\n")
    unreported = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert unreported.lost == ["chat 1001: /help answered 1 of 2"]
    log.write_text("ERROR lull.alerts: LOST MESSAGES: burst b-1 was signalled (ids [77])\n")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.clean, report.table()
    assert report.vanished_reported == 1


async def test_replies_out_of_order_are_reported(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # A Counter of answered words passes this; the order of replies must not.
    scene = await new_scene(sessionmaker)
    first = await scene.user_sends(1001, "u1m0")
    second = await scene.user_sends(1001, "u1m1")
    await scene.burst(1001, first, "sent")
    await scene.burst(1001, second, "sent")
    scene.bot_says(1001, "re: u1m1")
    scene.bot_says(1001, "re: u1m0")
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.out_of_order == ["chat 1001: 're: u1m0'"]
    assert not report.clean and not report.lost and not report.duplicated


async def test_a_burst_the_llm_answered_twice_counts_beyond_the_kills_that_allow_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    scene = await new_scene(sessionmaker)
    ids = await scene.user_sends(1001, "u1m0")
    await scene.burst(1001, ids, "sent")
    scene.bot_says(1001, "re: u1m0")
    scene.cluster.llm.paid_for.extend(["u1m0", "u1m0"])  # two 200s for one burst
    report = await check(scene.cluster, scene.accepted, sessionmaker)  # type: ignore[arg-type]
    assert report.paid_twice == ["'u1m0': 2 answers"] and not report.clean
    allowed = await check(
        scene.cluster,  # type: ignore[arg-type]
        scene.accepted,
        sessionmaker,
        paid_twice_allowed=1,  # a worker was killed with that call in flight
    )
    assert allowed.clean, allowed.table()


async def test_temporal_is_checked_for_a_retry_left_running(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from temporalio.testing import WorkflowEnvironment

    from testkit.servers import task_queue
    from tests.conftest import binary
    from workflows.ids import conversation_workflow_id
    from workflows.payloads import RetryBurstInput
    from workflows.retry_burst import RetryBurstWorkflow

    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"))
    try:
        scene = await new_scene(sessionmaker)
        tq = task_queue()
        # A retry workflow nobody runs: still running at the end.
        await env.client.start_workflow(
            RetryBurstWorkflow.run,
            RetryBurstInput("b-stuck", send_task_queue=tq),
            id="retry/b-stuck",
            task_queue=tq,
        )
        # A message never answered, in a conversation whose run waits on nothing that runs:
        # the report describes that run.
        await scene.user_sends(1001, "u1m0")
        await env.client.start_workflow(
            "ConversationWorkflow",
            id=conversation_workflow_id(scene.cluster.account_key, "ref1001"),
            task_queue=tq,
        )
        report = await check(
            scene.cluster,  # type: ignore[arg-type]
            scene.accepted,
            sessionmaker,
            temporal=env.client,
        )
        assert report.stuck == ["retry/b-stuck: retry still running"]
        assert report.lost == ["u1m0: in no burst"] and not report.clean
        diagnosis = "\n".join(report.diagnosis)
        assert "c-ref1001: 1 unfinished" in diagnosis
        assert "status RUNNING" in diagnosis and "WORKFLOW_TASK_SCHEDULED" in diagnosis
    finally:
        await env.shutdown()


def test_a_second_answer_is_allowed_only_when_the_first_went_to_a_killed_process() -> None:
    from tests.chaos.checker import _paid_twice_for_a_reason

    answers = [("u1m0", 1, 10.0, False), ("u1m0", 2, 40.0, False)]
    assert _paid_twice_for_a_reason(answers, [(1, 11.0)]) == 1  # killed holding it
    assert _paid_twice_for_a_reason(answers, [(1, 8.0)]) == 1  # killed while it was asked
    assert _paid_twice_for_a_reason(answers, [(2, 11.0)]) == 0  # another worker died
    assert _paid_twice_for_a_reason(answers, [(1, 45.0)]) == 0  # long after it was stored
    late = [("u1m0", 1, 10.0, True), ("u1m0", 2, 40.0, False)]
    assert _paid_twice_for_a_reason(late, []) == 1  # answered after the client gave up
