"""One 20,000-message conversation on the real dev server: every message is answered once,
in order, and no run of the continue-as-new chain passes 2,000 history events.

The time-skipping test server (1.40.0) cannot carry this: past a few thousand messages it
rejects a task completion when a signal meets a due timer, and the run stalls. So this runs
in real time (about 4.5 minutes: one conversation takes about 75 workflow tasks a second
on this machine), and to fit in CI most bursts end at the message cap, signalled one after
another (their quiet-period timer armed, then cancelled by the cap). Every 100th burst
ends on its quiet period instead, after a typing lease.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    Recorder,
    conversation_input,
    new_worker,
    run_sizes,
    signal_message,
    signal_typing,
)

MESSAGES = 20_000
CAP = 10
QUIET_EVERY = 100  # every 100th burst flushes on its quiet period


def answered(rec: Recorder) -> int:
    return sum(len(b) for b in rec.bursts())


async def test_20000_message_conversation_keeps_every_run_under_2000_events(
    dev_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(
        tq, debounce=1.0, max_messages=CAP, idle_close=600, typing_window_seconds=1.2
    )
    loop = asyncio.get_running_loop()
    async with new_worker(dev_env.client, rec, tq):
        first = handle = None
        sent, burst = 0, 0
        while sent < MESSAGES:
            burst += 1
            quiet = burst % QUIET_EVERY == 0
            for _ in range(min(3 if quiet else CAP, MESSAGES - sent)):
                sent += 1
                handle = await signal_message(dev_env.client, inp, tq, sent)
                first = first or handle
            if quiet:
                assert handle is not None
                await signal_typing(handle)
                # Real time: the lease and then the quiet period must pass.
                deadline = loop.time() + 20
                while answered(rec) < sent and loop.time() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                assert answered(rec) == sent, f"burst {burst} not flushed on its quiet period"
        deadline = loop.time() + 60
        while answered(rec) < MESSAGES and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        by_type: Counter[str] = Counter()
        assert first is not None
        sizes = await run_sizes(dev_env.client, first.id, first.result_run_id or "", by_type)

    flat = [i for b in rec.bursts() for i in b]
    assert flat == list(range(1, MESSAGES + 1)), "a message was lost, doubled or reordered"
    assert len(rec.sent) == len(rec.persisted), "every burst is sent once"
    assert len(sizes) > 10, "the chain continued as new"
    assert max(sizes) <= 2000, f"largest run {max(sizes)} events"
    print(
        f"\n20,000-message conversation: {len(rec.persisted)} bursts, {len(sizes)} runs, "
        f"largest {max(sizes)} events, {sum(sizes) / MESSAGES:.2f} events per message"
    )
