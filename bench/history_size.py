"""History cost of a long conversation: events per message and per burst, largest run.

    python -m bench.history_size [--messages 20000]

Runs one conversation on the time-skipping test server with recording activities:
bursts of 1-12 messages 0.1-3 s apart, typing between some, a lull between bursts.
Reported, never asserted: the target is at most 8 events per message, no run above 2,000.

Known limit: past about 2,000 messages the time-skipping test server (1.40.0) may reject a
workflow-task completion with "invalid history builder state for action" when a signal
lands at the very instant a timer is due, and the run stalls there. The real dev server
is soaked by ``bench/soak_dev.py`` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from temporalio.testing import WorkflowEnvironment

from bench.load import bursty_load
from testkit.servers import binary, task_queue
from testkit.workflow_harness import (
    Recorder,
    conversation_input,
    new_worker,
    run_sizes,
    signal_message,
    signal_typing,
)


async def main(messages: int) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, max_messages=10, idle_close=600)
    started = time.monotonic()
    async with new_worker(env.client, rec, tq):
        first = handle = await signal_message(env.client, inp, tq, 1)
        for step in bursty_load(messages - 1, seed=11, gap=(0.1, 3.0), lull=6.0):
            handle = await signal_message(env.client, inp, tq, step.message_id + 1)
            if step.typing:
                await signal_typing(handle)
            await env.sleep(step.then)
        await handle.result()
        by_type: Counter[str] = Counter()
        sizes = await run_sizes(env.client, first.id, first.result_run_id or "", by_type)
    await env.shutdown()
    total, bursts = sum(sizes), len(rec.persisted)
    print(
        f"messages {messages}, bursts {bursts}, runs {len(sizes)}, "
        f"wall {time.monotonic() - started:.0f} s"
    )
    print(
        f"history events: {total} in all, {total / messages:.2f} per message, "
        f"{total / bursts:.1f} per burst; largest run {max(sizes)} events"
    )
    top = by_type.most_common(8)
    print("per message, by type: " + ", ".join(f"{n.lower()} {c / messages:.2f}" for n, c in top))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20000)
    asyncio.run(main(parser.parse_args().messages))
