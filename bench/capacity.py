"""How much Lull takes: ingest throughput in a closed loop, and worker memory per open
conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from app.wiring import Runtime
from bench.lull_driver import (
    RecordingSender,
    WorkerProcesses,
    hand_over,
)
from inbound.accounts import register_account
from inbound.drain import wait_until_answered
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor

# The most the bench waits for an ingest run's backlog to be answered.
# Conversations opened before the footprint's per-conversation figure starts counting.
WARM_UP_CONVERSATIONS = 10
BACKLOG_WAIT_S = 900


async def throughput(
    rt: Runtime, seconds: float, *, bursty: bool, concurrency: int = 64
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` senders push messages through the seam as fast as it
    takes them, over 1,000 conversations; messages per second, per 10 s window.

    ``bursty``: each sender writes a burst of 1-12 messages to a chat, back to back, then
    moves on, as users write. Otherwise one message per chat in turn: a chat's next
    message comes seconds later, so every message is a burst of its own (the worst case:
    a full answer per message). A message counts once its signal landed; as the listener
    does, the next message of a chat goes in once the one before it is recorded, and a
    sender moves to its next chat once the burst's signals landed."""
    key = f"tput-{uuid.uuid4().hex[:8]}"
    account = await register_account(rt.sessionmaker, key=key, kind="replay", display_name=key)
    ingestor = rt.build_ingestor(account)
    # The account's sends are hosted here, as the channel process would: without them
    # every burst waits on send_reply and nothing is ever answered.
    sender = RecordingSender()
    async with rt.build_send_worker(account, sender):
        return await _closed_loop(rt, ingestor, sender, account.id, seconds, bursty, concurrency)


async def _closed_loop(
    rt: Runtime,
    ingestor: Ingestor,
    sender: RecordingSender,
    account_id: int,
    seconds: float,
    bursty: bool,
    concurrency: int,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sender.started = started
    done: list[float] = []
    seam_calls: list[float] = []
    batches = ingestor.signal_batches
    batches_before, items_before = batches.batches_sent, batches.items_sent

    async def lane_loop(lane: int) -> None:
        rng = random.Random(lane)
        chats = list(range(lane, 1000, concurrency))
        next_id = dict.fromkeys(chats, 0)
        i = 0
        while loop.time() - started < seconds:
            chat_id = chats[i % len(chats)]
            i += 1
            burst = []
            for _ in range(rng.randint(1, 12) if bursty else 1):
                next_id[chat_id] += 1
                incoming = IncomingMessage(
                    chat_id, chat_id, next_id[chat_id], "load", sent_at=datetime.now(UTC)
                )
                burst.append(await hand_over(ingestor, incoming, seam_calls))
            await asyncio.gather(*burst)
            done.extend([loop.time() - started] * len(burst))

    await asyncio.gather(*(lane_loop(lane) for lane in range(concurrency)))
    windows = [
        sum(1 for t in done if w * 10 <= t < (w + 1) * 10) / 10 for w in range(int(seconds // 10))
    ]
    answered_in_load = sum(s.messages for s in sender.sent if s.at < seconds)
    pending = await wait_until_answered(rt.sessionmaker, account_id, within=60)
    drained = loop.time() - started - seconds
    # The backlog is answered before the next part of the bench starts (its sends need the
    # send worker above): left running, it would load the workers the next part measures.
    left = await wait_until_answered(rt.sessionmaker, account_id, within=BACKLOG_WAIT_S)
    if left:
        print(f"  WARNING: {left} messages still unanswered; later figures carry the load")
    all_answered_s = None if left else loop.time() - started - seconds
    return {
        "shape": "bursts of 1-12" if bursty else "one message per burst",
        "messages": len(done),
        "per_second": len(done) / seconds,
        "windows_per_second": windows,
        # Messages answered (their reply's send call made) while the load ran, per second:
        # whether the whole path keeps up, not only the seam.
        "answered_per_second": answered_in_load / seconds,
        "messages_per_signal": (batches.items_sent - items_before)
        / max(1, batches.batches_sent - batches_before),
        "unanswered_after_drain": pending,
        "drain_s": drained,
        # Seconds after the load until every message was answered (None: not within
        # BACKLOG_WAIT_S): how far behind the answers fell.
        "all_answered_s": all_answered_s,
    }


async def footprint(rt: Runtime, workers: WorkerProcesses, sizes: list[int]) -> list[dict]:
    """Worker RSS with N open conversations (each one buffered message and a long quiet
    period, so every one stays open and cached)."""
    await workers.scale_to(0)
    await workers.scale_to(1)
    key = f"rss-{uuid.uuid4().hex[:8]}"
    account = await register_account(rt.sessionmaker, key=key, kind="replay", display_name=key)
    config = dataclasses.replace(
        rt.conversation_config(),
        debounce_seconds=3600,
        max_wait_seconds=7200,
        idle_close_seconds=7200,
    )
    ingestor = Ingestor(
        rt.client,
        rt.sessionmaker,
        account,
        config=config,
        task_queue=rt.settings.task_queue,
        chat_hash_key=b"bench",
    )
    semaphore = asyncio.Semaphore(64)

    async def open_one(chat_id: int) -> None:
        async with semaphore:
            await ingestor.message(
                IncomingMessage(chat_id, chat_id, 1, "hi", sent_at=datetime.now(UTC))
            )

    baseline = await settled_rss(workers)
    # Whatever the first workflows cost the process once (the sandbox's imports, the SDK's
    # caches) is measured apart, so it is not spread over each conversation. On
    # 2026-12-02 it was about 4 MiB: not what makes the 1,000 figure high.
    await asyncio.gather(*(open_one(c) for c in range(WARM_UP_CONVERSATIONS)))
    warm = await settled_rss(workers)
    rows, opened = [], WARM_UP_CONVERSATIONS
    for size in sizes:
        await asyncio.gather(*(open_one(c) for c in range(opened, size)))
        opened = size
        rss = await settled_rss(workers)
        rows.append(
            {
                "conversations": size,
                "rss_kib": rss,
                "baseline_kib": baseline,
                "warm_kib": warm,
                "warm_up_conversations": WARM_UP_CONVERSATIONS,
                # Everything above the idle worker, divided by the conversations open.
                "per_conversation_kib": (rss - baseline) / size,
                # What one more cached conversation costs once the worker is warm.
                "marginal_kib": (rss - warm) / (size - WARM_UP_CONVERSATIONS),
            }
        )
    # Leave nothing running for later runs of the bench on this state.
    await workers.scale_to(0)
    return rows


async def settled_rss(workers: WorkerProcesses) -> int:
    """The worker's RSS once it stops moving (workflow tasks done)."""
    last = -1
    for _ in range(60):
        await asyncio.sleep(1.0)
        (now,) = workers.rss_kib()
        if abs(now - last) < 256:
            return now
        last = now
    return last
