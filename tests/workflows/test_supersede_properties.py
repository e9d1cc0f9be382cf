"""Supersede and the typing hold over random arrival times, LLM durations and typing, on
the time-skipping server (one server per example). The LLM takes real time, so messages
land during generations, after them, and during typing holds, in whatever order the
machine gives; the properties hold for every interleaving."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, conversation_input, new_worker
from tests.conftest import binary
from tests.workflows.test_workflow_properties import RESULT_TIMEOUT, why_not_finished
from workflows.conversation import ConversationWorkflow
from workflows.ids import conversation_workflow_id
from workflows.payloads import MessageReceived, TypingObserved

DEBOUNCE, MAX_WAIT, MAX_SUPERSEDES = 2, 12, 2

event = st.tuples(
    st.floats(min_value=0.05, max_value=5.0),
    st.sampled_from(["message", "message", "message", "typing", "cancel"]),
)
llm_seconds = st.lists(st.floats(min_value=0.0, max_value=1.5), min_size=1, max_size=6)


async def run_events(
    events: list[tuple[float, str]], durations: list[float]
) -> tuple[Recorder, list[int]]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    tq = task_queue()
    rec = Recorder(llm_seconds=lambda call: durations[(call - 1) % len(durations)])
    inp = conversation_input(
        tq,
        debounce=DEBOUNCE,
        idle_close=30,
        max_wait_seconds=MAX_WAIT,
        typing_window_seconds=3,
        mid_reply="supersede",
        max_supersedes=MAX_SUPERSEDES,
        hold_reply_while_typing=True,
    )
    ref = inp.conversation
    wf_id = conversation_workflow_id(ref.account_key, ref.chat_ref)
    ids: list[int] = []
    handle = None
    try:
        async with new_worker(env.client, rec, tq):
            for gap, kind in events:
                # Skipped time, then a moment of real time for a call in flight to go on.
                await env.sleep(gap)
                await asyncio.sleep(min(gap, 2.0) / 4)
                if kind != "message":
                    if handle is not None and not (await handle.describe()).close_time:
                        await handle.signal(
                            ConversationWorkflow.typing_observed, TypingObserved(7, kind)
                        )
                    continue
                ids.append(len(ids) + 1)
                handle = await env.client.start_workflow(
                    ConversationWorkflow.run,
                    inp,
                    id=wf_id,
                    task_queue=tq,
                    start_signal="message_received",
                    start_signal_args=[MessageReceived(ids[-1], 7, 5)],
                )
            if handle is not None:
                try:
                    await asyncio.wait_for(handle.result(), timeout=RESULT_TIMEOUT)
                except TimeoutError:
                    raise AssertionError(await why_not_finished(handle)) from None
    finally:
        await env.shutdown()
    return rec, ids


# Messages and typing in the middle of slow calls: supersedes, a typing hold, the bound.
MID_REPLY = [
    (0.1, "message"),
    (2.5, "message"),
    (0.2, "message"),
    (2.5, "message"),
    (2.5, "typing"),
    (0.3, "message"),
    (2.5, "message"),
    (3.0, "message"),
]


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(event, max_size=14), llm_seconds)
@example(MID_REPLY, [1.5])
def test_no_stale_reply_every_message_once_in_order_and_no_burst_past_its_bound(
    events: list[tuple[float, str]], durations: list[float]
) -> None:
    rec, ids = asyncio.run(run_events(events, durations))
    by_key = {p.burst_key: p for p in rec.persisted}
    sent = [by_key[key] for key in rec.sent]
    # Every message answered exactly once, in order.
    assert [i for burst in sent for i in burst.message_ids] == ids
    assert len(set(rec.sent)) == len(rec.sent)
    superseded = {m.burst_key for m in rec.mid_replies if m.superseded}
    kept = {m.burst_key for m in rec.mid_replies if not m.superseded}
    assert not superseded & set(rec.sent)  # a superseded burst sends nothing
    for burst, sent_at, after in zip(sent, rec.sent_at, sent[1:], strict=False):
        # No reply went out after its author wrote (every message here is the author's):
        # the next reply's messages all came after it was sent, unless a bound kept it.
        if burst.burst_key not in kept:
            assert after.first_message_at >= sent_at, (burst, after, rec.mid_replies)
    for burst, sent_at in zip(sent, rec.sent_at, strict=True):
        # No burst waits past the max wait and one quiet period (and its own call).
        waited = sent_at - burst.first_message_at
        assert waited <= timedelta(seconds=MAX_WAIT + DEBOUNCE + 2), (burst, waited)
    # At most MAX_SUPERSEDES in a row: a chain of takeovers is never longer.
    chain: dict[str, int] = {}
    for p in rec.persisted:
        chain[p.burst_key] = chain.get(p.takes_over, 0) + 1 if p.takes_over else 0
        assert chain[p.burst_key] <= MAX_SUPERSEDES
