"""A 20,000-message conversation with the default history limit: no run of its
continue-as-new chain passes 2,000 events, and every message is in exactly one burst.

Messages come ten at a time, so each burst flushes at the cap the moment it fills: no
signal lands on a timer's due instant, which the time-skipping test server (1.40.0) may
reject with "invalid history builder state" (see bench/history_size.py for the realistic
load and its events per message).
"""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from tests.conftest import task_queue
from tests.workflows.helpers import Recorder, conversation_input, new_worker, signal_message
from tests.workflows.test_continue_as_new import run_sizes

MESSAGES = 20_000


async def test_a_twenty_thousand_message_conversation_keeps_every_run_under_2000_events(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, max_messages=10, idle_close=600)
    assert inp.config.max_history_events == 1500  # the default
    async with new_worker(time_env.client, rec, tq):
        first = await signal_message(time_env.client, inp, tq, 1)
        for start in range(2, MESSAGES + 1, 10):
            ids = range(start, min(start + 10, MESSAGES + 1))
            # One burst's messages arrive together, as after a listener's catch-up.
            await asyncio.gather(*(signal_message(time_env.client, inp, tq, i) for i in ids))
            await time_env.sleep(0.5)
        handle = time_env.client.get_workflow_handle(first.id)
        await handle.result()
    ids = [i for burst in rec.bursts() for i in burst]
    assert sorted(ids) == list(range(1, MESSAGES + 1))
    assert len(ids) == len(set(ids))
    sizes = await run_sizes(time_env.client, first.id, first.result_run_id or "")
    assert len(sizes) > 10
    assert max(sizes) <= 2000, max(sizes)
    print(f"{len(sizes)} runs, largest {max(sizes)} events, {sum(sizes) / MESSAGES:.2f} per message")
