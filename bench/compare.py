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
import json
import os
import platform
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.settings import load_settings
from app.wiring import Runtime, lull_runtime
from bench import cpu, report
from bench.baseline_runs import count_per_message_calls, overheads, run_redis_batcher, running_redis
from bench.capacity import footprint, throughput
from bench.lull_driver import (
    Sent,
    WorkerProcesses,
    burst_stages,
    run_workload,
)
from bench.stats import percentile
from bench.workload import DEBOUNCE, MAX_BATCH, TYPING_WINDOW, Workload, build
from inbound.signal_linger import SignalLinger
from testkit.servers import free_port

RESULTS = Path(__file__).parent / "results"


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
