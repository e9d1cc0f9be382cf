"""`make bench`: Lull against the designs it replaces, on the same load, in one run.

    python -m bench.compare [--reps 3] [--scales 10,100,1000] [--throughput-seconds 60]
                            [--footprint 1000,10000] [--quick]

Lull runs on the embedded stack (Temporal dev server + Postgres) with `lull worker`
subprocesses and the echo LLM; the Redis batcher runs against its own `redis-server`
(started and stopped here). Every figure is printed and written to `bench/results/` as
markdown and JSON, with Lull's figures as ratios to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.settings import load_settings
from app.wiring import Runtime, lull_runtime
from bench import cpu, report
from bench.baselines.per_message import PerMessageBot
from bench.baselines.redis_batcher import RedisBatcher
from bench.lull_driver import (
    RecordingSender,
    Sent,
    WorkerProcesses,
    burst_stages,
    hand_over,
    run_workload,
)
from bench.stats import percentile
from bench.workload import DEBOUNCE, MAX_BATCH, TYPING_WINDOW, Workload, build
from inbound.accounts import register_account
from inbound.drain import wait_until_answered
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor
from inbound.signal_linger import SignalLinger
from testkit.servers import free_port

RESULTS = Path(__file__).parent / "results"
# Conversations opened before the footprint's per-conversation figure starts counting.
WARM_UP_CONVERSATIONS = 10
# The most the bench waits for an ingest run's backlog to be answered.
BACKLOG_WAIT_S = 900


def overheads(sent: list[Sent], workload: Workload) -> tuple[list[float], int]:
    """Seconds from each batch's ideal flush moment to its send call; and how many batches
    did not match an ideal batch (split or merged differently)."""
    values, unmatched = [], 0
    for s in sent:
        due = workload.due.get((s.chat_id, s.last_message_id))
        if due is None:
            unmatched += 1
            continue
        values.append(s.at - due)
    return values, unmatched


# -- the Redis batcher ---------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running_redis(work_dir: Path) -> AsyncIterator[Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found; install it: apt-get install -y redis-server")
    port = free_port()
    # A one-off spawn at set-up; the bench measures nothing while it runs.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(work_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # One connection per concurrently ingesting chat, as many bots run it.
    redis = Redis(host="127.0.0.1", port=port, max_connections=4096)
    try:
        for _ in range(100):
            with contextlib.suppress(Exception):
                if await redis.ping():
                    break
            await asyncio.sleep(0.05)
        yield redis
    finally:
        await redis.aclose()
        proc.terminate()
        proc.wait(10)


async def run_redis_batcher(redis: Redis, workload: Workload) -> tuple[list[Sent], int]:
    await redis.flushall()
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent: list[Sent] = []

    async def answer(chat_id: int, texts: list[str]) -> None:
        last = int(texts[-1].removeprefix("m"))
        sent.append(Sent(chat_id, last, len(texts), loop.time() - started))

    batcher = RedisBatcher(redis, debounce=DEBOUNCE, max_batch=MAX_BATCH, answer=answer)
    stop = asyncio.Event()
    processor = asyncio.create_task(batcher.run(stop))
    by_chat: dict[int, list[Any]] = {}
    for event in workload.events:
        if event.kind == "message":
            by_chat.setdefault(event.chat_id, []).append(event)

    async def chat(events: list[Any]) -> None:
        for event in events:
            delay = started + event.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await batcher.ingest(event.chat_id, f"m{event.message_id}")

    await asyncio.gather(*(chat(e) for e in by_chat.values()))
    deadline = loop.time() + DEBOUNCE + 30
    # Polls the baseline's own record of answers, which offers no event to wait on.
    while sum(s.messages for s in sent) < workload.messages and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    stop.set()
    await processor
    return sent, batcher.llm_calls


async def count_per_message_calls(workload: Workload) -> int:
    async def answer(chat_id: int, texts: list[str]) -> None:
        await asyncio.sleep(0)

    bot = PerMessageBot(answer)
    for event in workload.events:
        if event.kind == "message":
            await bot.ingest(event.chat_id, f"m{event.message_id}")
    return bot.llm_calls


# -- Lull measurements -----------------------------------------------------------------------
async def history_figures(rt: Runtime, account_prefix: str) -> dict[str, Any]:
    """Events per message and per burst over a run's conversations, the largest run, and
    where the events come from (signals by name, timers, workflow tasks, activities)."""
    from temporalio.api.enums.v1 import EventType

    client = rt.client
    query = f"WorkflowId STARTS_WITH 'conversation/{account_prefix}/'"
    events = runs = largest = 0
    kinds: dict[str, int] = {}
    async for wf in client.list_workflows(query):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        size = len(history.events)
        events += size
        runs += 1
        largest = max(largest, size)
        for event in history.events:
            kind = event_kind(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_"))
            if kind == "signal":
                kind += " " + event.workflow_execution_signaled_event_attributes.signal_name
            kinds[kind] = kinds.get(kind, 0) + 1
    return {"events": events, "runs": runs, "largest_run": largest, "by_kind": kinds}


def event_kind(name: str) -> str:
    for prefix, kind in (
        ("WORKFLOW_EXECUTION_SIGNALED", "signal"),
        ("WORKFLOW_TASK_", "workflow task"),
        ("TIMER_", "timer"),
        ("ACTIVITY_TASK_", "activity"),
        ("MARKER_RECORDED", "local activity"),
        ("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", "search attributes"),
    ):
        if name.startswith(prefix):
            return kind
    return "other"


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


# -- the run ---------------------------------------------------------------------------------
async def main(args: argparse.Namespace) -> dict[str, Any]:
    work_dir = Path(".lull") / f"bench-{uuid.uuid4().hex[:6]}"
    work_dir.mkdir(parents=True)
    settings = load_settings(
        data_dir=work_dir,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        task_queue=f"bench-{uuid.uuid4().hex[:6]}",
        debounce_seconds=DEBOUNCE,
        typing_window_seconds=TYPING_WINDOW,
        max_burst_messages=MAX_BATCH,
        log_level="WARNING",
    )
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "worker_env": args.worker_env,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": {"debounce_s": DEBOUNCE, "typing_window_s": TYPING_WINDOW, "cap": MAX_BATCH},
        "overhead": [],
    }
    try:
        async with lull_runtime(settings) as rt, running_redis(work_dir) as redis:
            configured = settings.ingest_signal_linger_seconds
            linger = SignalLinger(rt.conversation_config(), linger=configured).linger
            results["load"]["signal_linger_s"] = linger
            extra = dict(item.split("=", 1) for item in args.worker_env)
            workers = WorkerProcesses(
                rt,
                work_dir,
                **{"LULL_MAX_CACHED_WORKFLOWS": str(max(args.footprint + [2000]) + 500), **extra},
            )
            try:
                await measure(rt, redis, workers, args, results)
            finally:
                await workers.close()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return results


async def measure(
    rt: Runtime, redis: Redis, workers: WorkerProcesses, args: argparse.Namespace, out: dict
) -> None:
    for worker_count in args.workers:
        await workers.scale_to(worker_count)
        for scale in args.scales:
            for rep in range(args.reps):
                workload = build(scale, seed=rep)
                print(f"overhead: {scale} conversations, {worker_count} worker(s), rep {rep + 1}")
                t0 = time.monotonic()
                cpu_before = cpu.snapshot()
                sender = await run_workload(rt, workload, within=DEBOUNCE + 120)
                cpu_spent = cpu.spent(cpu_before, cpu.snapshot())
                lull_values, lull_unmatched = overheads(sender.sent, workload)
                stages = stage_medians(await burst_stages(rt, sender), sender.sent, workload)
                redis_sent, redis_calls = await run_redis_batcher(redis, workload)
                redis_values, redis_unmatched = overheads(redis_sent, workload)
                row = {
                    "workers": worker_count,
                    "conversations": scale,
                    "rep": rep,
                    "messages": workload.messages,
                    "lull": summary(lull_values, sender.sent, lull_unmatched, workload),
                    "redis": summary(redis_values, redis_sent, redis_unmatched, workload),
                    "redis_llm_calls": redis_calls,
                    "lull_stages_ms": stages,
                    "seam_call_ms": {
                        "p50": percentile(sender.seam_calls, 0.50) * 1000,
                        "p99": percentile(sender.seam_calls, 0.99) * 1000,
                    },
                    "wall_s": time.monotonic() - t0,
                    "messages_per_signal": sender.messages_per_signal,
                    "cpu_ms_per_message": {
                        kind: seconds * 1000 / workload.messages
                        for kind, seconds in cpu_spent.items()
                    },
                }
                if worker_count == args.workers[0] and scale == 100 and rep == 0:
                    prefix = await last_account_prefix(rt)
                    row["history"] = await history_figures(rt, prefix)
                    row["per_message_llm_calls"] = await count_per_message_calls(workload)
                out["overhead"].append(row)
                print(report.overhead_line(row))
        for bursty in (True, False):
            row = await throughput(rt, args.throughput_seconds, bursty=bursty)
            out["throughput"] = out.get("throughput", []) + [{"workers": worker_count, **row}]
            print(report.throughput_line(out["throughput"][-1]))
    out["footprint"] = await footprint(rt, workers, args.footprint)
    for row in out["footprint"]:
        print(report.footprint_line(row))


async def last_account_prefix(rt: Runtime) -> str:
    from sqlalchemy import select

    from db.tables import account

    async with rt.sessionmaker() as session:
        key = (
            await session.execute(
                select(account.c.key)
                .where(account.c.key.like("bench-%"))
                .order_by(account.c.id.desc())
                .limit(1)
            )
        ).scalar_one()
    return key


def stage_medians(
    stages: list[tuple[int, int, float, float]], sent: list[Sent], workload: Workload
) -> dict[str, float]:
    """Where Lull's overhead goes, median ms: ideal moment → flush (timer and workflow
    task), flush → reply stored (persist + generate), reply stored → send call."""
    send_at = {(s.chat_id, s.last_message_id): s.at for s in sent}
    timer, answer, send = [], [], []
    for chat_id, last_id, flushed, stored in stages:
        due = workload.due.get((chat_id, last_id))
        sent_time = send_at.get((chat_id, last_id))
        if due is None or sent_time is None:
            continue
        timer.append(flushed - due)
        answer.append(stored - flushed)
        send.append(sent_time - stored)

    def ms(values: list[float]) -> float:
        return percentile(values, 0.50) * 1000

    return {"to_flush": ms(timer), "flush_to_reply": ms(answer), "reply_to_send": ms(send)}


def summary(values: list[float], sent: list[Sent], unmatched: int, workload: Workload) -> dict:
    answered = sum(s.messages for s in sent)
    return {
        "batches": len(sent),
        "answered_messages": answered,
        "unanswered_messages": workload.messages - answered,
        "unmatched_batches": unmatched,
        "p50_ms": percentile(values, 0.50) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "llm_calls_per_message": len(sent) / workload.messages,
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scales", default="10,100,1000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--throughput-seconds", type=float, default=60)
    parser.add_argument("--footprint", default="1000,10000")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a `lull worker` setting, e.g. LULL_MAX_CONCURRENT_WORKFLOW_TASKS=50",
    )
    parser.add_argument("--quick", action="store_true", help="1 rep, 10 and 100, 20 s, 1,000")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.scales, args.throughput_seconds, args.footprint = 1, "10,100", 20, "1000"
    # An empty list skips that part, e.g. --scales "" --workers "" for the footprint alone.
    args.scales = [int(x) for x in args.scales.split(",") if x]
    args.workers = [int(x) for x in args.workers.split(",") if x]
    args.footprint = [int(x) for x in args.footprint.split(",") if x]
    return args


if __name__ == "__main__":
    arguments = parse()
    measured = asyncio.run(main(arguments))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(measured, indent=2))
    markdown = report.markdown(measured)
    (RESULTS / f"{stamp}.md").write_text(markdown)
    print(markdown)
    print(f"written to bench/results/{stamp}.md and .json")
