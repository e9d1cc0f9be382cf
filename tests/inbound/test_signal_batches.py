"""SignalBatches: what meets in flight goes together, in order, and no caller is left
without its batch's outcome. The send is a plain coroutine here: this is the batching
rule alone; tests/inbound/test_ingestor.py runs it against Temporal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment

from inbound.accounts import register_account
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor
from inbound.send_queue import send_task_queue
from inbound.signal_batches import SignalBatches
from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, new_worker, until_sent
from workflows.payloads import ConversationConfig

NOW = datetime(2026, 12, 2, tzinfo=UTC)


async def settle() -> None:
    """Let every ready task run (a deliver, then the sender task it starts)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Sends:
    """Records each batch; each send waits until the test lets it finish, then returns
    the batch's number."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_next: Exception | None = None

    async def __call__(self, items: list[str]) -> int:
        self.batches.append(items)
        number = len(self.batches)
        await self.release.wait()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return number


async def test_items_arriving_while_a_batch_flies_ride_the_next_one_in_order() -> None:
    sends = Sends()
    batches = SignalBatches(sends)
    first = asyncio.create_task(batches.deliver("chat", "a"))
    await settle()
    rest = [asyncio.create_task(batches.deliver("chat", x)) for x in "bcd"]
    other = asyncio.create_task(batches.deliver("other chat", "z"))
    await settle()
    assert sends.batches == [["a"], ["z"]]  # one in flight per chat, chats independent
    sends.release.set()
    assert await first == 1
    assert [await t for t in rest] == [3, 3, 3]
    assert await other == 2
    assert sends.batches == [["a"], ["z"], ["b", "c", "d"]]
    assert (batches.batches_sent, batches.items_sent, batches.in_flight) == (3, 5, 0)


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_still_goes() -> None:
    sends = Sends()
    batches = SignalBatches(sends)
    sends.fail_next = ConnectionError("temporal unreachable")
    first = asyncio.create_task(batches.deliver("chat", "a"))
    await settle()
    later = asyncio.create_task(batches.deliver("chat", "b"))
    sends.release.set()
    with pytest.raises(ConnectionError, match="unreachable"):
        await first
    assert await later == 2
    assert sends.batches == [["a"], ["b"]]
    assert (batches.batches_sent, batches.items_sent) == (1, 1)


async def test_a_cancelled_caller_does_not_take_the_others_batch_with_it() -> None:
    sends = Sends()
    batches = SignalBatches(sends)
    first = asyncio.create_task(batches.deliver("chat", "a"))
    await settle()
    leaving = asyncio.create_task(batches.deliver("chat", "b"))
    staying = asyncio.create_task(batches.deliver("chat", "c"))
    await settle()
    leaving.cancel()
    sends.release.set()
    await first
    assert await staying == 2
    assert sends.batches == [["a"], ["b", "c"]]  # "b" was already handed over: it still goes
    assert leaving.cancelled()


async def test_shutdown_cancels_the_callers_still_waiting() -> None:
    sends = Sends()
    batches = SignalBatches(sends)
    first = asyncio.create_task(batches.deliver("chat", "a"))
    await settle()
    queued = asyncio.create_task(batches.deliver("chat", "b"))
    await settle()
    for task in [t for t in asyncio.all_tasks() if "_send_pending" in repr(t)]:
        task.cancel()
    for caller in (first, queued):
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert batches.in_flight == 0


async def test_held_items_ride_one_batch_and_an_item_due_now_sends_them_at_once() -> None:
    sends = Sends()
    sends.release.set()
    batches = SignalBatches(sends)
    held = [asyncio.create_task(batches.deliver("chat", x, hold=30)) for x in "ab"]
    await settle()
    assert sends.batches == []  # both wait for what comes next
    due = asyncio.create_task(batches.deliver("chat", "c"))
    assert await asyncio.wait_for(asyncio.gather(*held, due), 5) == [1, 1, 1]
    assert sends.batches == [["a", "b", "c"]]


async def test_a_hold_ends_by_itself() -> None:
    sends = Sends()
    sends.release.set()
    batches = SignalBatches(sends)
    assert await asyncio.wait_for(batches.deliver("chat", "a", hold=0.05), 5) == 1
    assert (sends.batches, batches.in_flight) == ([["a"]], 0)


async def test_flush_sends_the_held_items_and_waits_for_the_batch_on_its_way() -> None:
    sends = Sends()
    batches = SignalBatches(sends)
    await asyncio.wait_for(batches.flush("chat"), 5)  # nothing held: returns at once
    flying = asyncio.create_task(batches.deliver("chat", "a"))
    await settle()
    held = asyncio.create_task(batches.deliver("chat", "b", hold=30))
    flush = asyncio.create_task(batches.flush("chat"))
    await settle()
    assert not flush.done()  # "a" has not landed yet
    sends.release.set()
    await asyncio.wait_for(flush, 5)
    assert flying.done() and held.done()
    assert sends.batches == [["a"], ["b"]]


# -- through the seam, on a real Temporal server ----------------------------------------------
class HoldFirstSignal(Interceptor):
    """Holds the first signal-with-start until the test releases it, so the messages after
    it surely meet it in flight (the real server answers in milliseconds)."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Holding(next, self)


class _Holding(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, gate: HoldFirstSignal) -> None:
        super().__init__(next)
        self._gate = gate

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        if not self._gate.held.is_set():
            self._gate.held.set()
            await self._gate.release.wait()
        return await super().start_workflow(input)


async def signal_names(env: WorkflowEnvironment, workflow_id: str) -> list[str]:
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


@pytest.mark.parametrize("batch_signals", [True, False])
async def test_a_burst_that_meets_its_first_signal_in_flight_is_one_more_signal(
    time_env: WorkflowEnvironment,
    sessionmaker: async_sessionmaker[AsyncSession],
    batch_signals: bool,
) -> None:
    tq, rec, gate = task_queue(), Recorder(), HoldFirstSignal()
    config = time_env.client.config()
    config["interceptors"] = [gate]
    client = Client(**config)
    key = f"batch-{uuid.uuid4().hex[:8]}"
    account = await register_account(sessionmaker, key=key, kind="replay", display_name=key)
    ingestor = Ingestor(
        client,
        sessionmaker,
        account,
        config=ConversationConfig(1, 10, 30),
        task_queue=tq,
        chat_hash_key=b"k",
        batch_signals=batch_signals,
    )
    sends = new_worker(time_env.client, rec, send_task_queue(tq, key))
    async with new_worker(time_env.client, rec, tq), sends:
        # As the listener does: each message goes in once the one before it is recorded.
        in_flight = []
        for message_id in (1, 2, 3, 4):
            recorded = asyncio.Event()
            incoming = IncomingMessage(77, 5, message_id, f"part {message_id}", NOW)
            in_flight.append(
                asyncio.create_task(ingestor.message(incoming, on_recorded=recorded.set))
            )
            await recorded.wait()
        await gate.held.wait()
        gate.release.set()
        results = await asyncio.gather(*in_flight)
        await until_sent(time_env, rec)
        names = await signal_names(time_env, results[0].workflow_id)
    assert all(r.signalled for r in results)
    assert len({r.run_id for r in results}) == 1
    assert rec.bursts() == [[1, 2, 3, 4]]  # one burst, one answer, either way
    if batch_signals:
        assert names == ["message_received", "messages_received"]
        assert (ingestor.signal_batches.batches_sent, ingestor.signal_batches.items_sent) == (2, 4)
    else:
        assert names == ["message_received"] * 4


async def lingering_ingestor(
    env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession], tq: str
) -> tuple[Ingestor, str]:
    """An ingestor on a fresh account, with its key. Quiet period 8 s: a message after a
    burst's first may wait up to 1 s for the next."""
    key = f"linger-{uuid.uuid4().hex[:8]}"
    account = await register_account(sessionmaker, key=key, kind="replay", display_name=key)
    ingestor = Ingestor(
        env.client,
        sessionmaker,
        account,
        config=ConversationConfig(8, 10, 60),
        task_queue=tq,
        chat_hash_key=b"k",
    )
    return ingestor, key


async def test_a_bursts_next_messages_wait_for_each_other_and_an_edit_lands_after_them(
    time_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tq, rec = task_queue(), Recorder()
    ingestor, key = await lingering_ingestor(time_env, sessionmaker, tq)
    sends = new_worker(time_env.client, rec, send_task_queue(tq, key))
    async with new_worker(time_env.client, rec, tq), sends:
        first = await ingestor.message(IncomingMessage(77, 5, 1, "hi", NOW))
        in_flight = []
        for message_id in (2, 3):
            recorded = asyncio.Event()
            incoming = IncomingMessage(77, 5, message_id, f"part {message_id}", NOW)
            in_flight.append(
                asyncio.create_task(ingestor.message(incoming, on_recorded=recorded.set))
            )
            await recorded.wait()
        await settle()
        assert not any(t.done() for t in in_flight)  # 2 and 3 wait for what comes next
        # The edit of 3 sends the held signal first: 3 is buffered when the edit lands.
        edited = await ingestor.edit(
            chat_id=77, message_id=3, text="part 3, longer now", edited_at=NOW
        )
        results = await asyncio.gather(*in_flight)
        await until_sent(time_env, rec)
        names = await signal_names(time_env, first.workflow_id)
    assert edited and all(r.signalled for r in [first, *results])
    assert names == ["message_received", "messages_received", "message_edited"]
    assert rec.bursts() == [[1, 2, 3]]


async def test_a_caller_that_awaits_each_message_is_never_held(
    time_env: WorkflowEnvironment,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ``on_recorded`` the chat's next message comes only after this call returns:
    holding it would delay that message's acceptance, and so its reply."""
    tq, rec = task_queue(), Recorder()
    ingestor, key = await lingering_ingestor(time_env, sessionmaker, tq)
    holds: list[float] = []
    deliver = ingestor.signal_batches.deliver

    async def noting(key: object, item: Any, *, hold: float = 0.0) -> Any:
        holds.append(hold)
        return await deliver(key, item, hold=hold)

    monkeypatch.setattr(ingestor.signal_batches, "deliver", noting)
    sends = new_worker(time_env.client, rec, send_task_queue(tq, key))
    async with new_worker(time_env.client, rec, tq), sends:
        for message_id in (1, 2, 3):
            await ingestor.message(IncomingMessage(77, 5, message_id, f"part {message_id}", NOW))
        recorded = asyncio.Event()
        pipelined = asyncio.create_task(
            ingestor.message(IncomingMessage(77, 5, 4, "part 4", NOW), on_recorded=recorded.set)
        )
        await recorded.wait()
        await settle()
        assert holds == [0.0, 0.0, 0.0, pytest.approx(1.0, abs=0.2)]
        workflow_id = (await pipelined).workflow_id
        await until_sent(time_env, rec)
        names = await signal_names(time_env, workflow_id)
    assert rec.bursts() == [[1, 2, 3, 4]]
    assert names == ["message_received"] * 4
