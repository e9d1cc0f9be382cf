"""`python -m bench.mid_reply`: the same load with LULL_MID_REPLY=supersede and =queue,
side by side, with an LLM that takes as long as a real one.

The load is the afterthought users are known for: a burst, the pause, then "tomorrow?"
while the reply is being made. Each conversation writes a burst of 1-4 messages; half of
them write one more message after the quiet period, while the echo LLM (1.5 s a call,
LULL_ECHO_DELAY_SECONDS) is answering. Read from Postgres afterwards, per mode:

- replies sent per conversation, and stale replies: a reply sent after a message of
  its chat that it does not answer had been recorded (the user had said more);
- LLM calls per message (cancelled calls included) and the spend supersedes discarded;
- flush-to-send latency, and last message to reply (what the user waits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.settings import load_settings
from app.wiring import Runtime, lull_runtime
from bench.lull_driver import WorkerProcesses, run_workload
from bench.stats import percentile
from bench.workload import DEBOUNCE, Event, Workload
from db.tables import burst, conversation, message, reply
from testkit.servers import free_port

LLM_SECONDS = 1.5
RESULTS = Path(__file__).parent / "results"


def afterthought_load(conversations: int, *, seed: int, spread: float = 10.0) -> Workload:
    rng = random.Random(seed)
    events: list[Event] = []
    for index in range(conversations):
        chat_id, t, message_id = 5_000 + index, rng.uniform(0, spread), 0
        for _ in range(rng.randint(1, 4)):
            message_id += 1
            events.append(Event(t, chat_id, message_id, "message"))
            t += rng.uniform(0.1, 0.8)
        if rng.random() < 0.5:
            # After the quiet period, while the reply is made: the stale-reply moment.
            message_id += 1
            at = t - 0.8 + DEBOUNCE + rng.uniform(0.3, LLM_SECONDS - 0.2)
            events.append(Event(at, chat_id, message_id, "message"))
    events.sort(key=lambda e: e.at)
    count = sum(1 for e in events if e.kind == "message")
    return Workload(events, count, {})


async def measure_mode(rt: Runtime, mode: str, load: Workload) -> dict[str, Any]:
    moded = replace(rt, settings=rt.settings.model_copy(update={"mid_reply": mode}))
    sender = await run_workload(moded, load, within=120)
    async with rt.sessionmaker() as session:
        bursts = (
            await session.execute(
                select(
                    burst.c.id,
                    burst.c.conversation_id,
                    burst.c.status,
                    burst.c.flushed_at,
                    burst.c.sent_at,
                    burst.c.last_message_at,
                    burst.c.message_ids,
                )
                .join(conversation, conversation.c.id == burst.c.conversation_id)
                .where(conversation.c.account_id == sender.account_id)
            )
        ).all()
        messages = (
            await session.execute(
                select(
                    message.c.conversation_id, message.c.message_id, message.c.received_at
                ).where(message.c.account_id == sender.account_id)
            )
        ).all()
        calls = (
            await session.execute(
                select(
                    func.count(reply.c.id),
                    func.count(reply.c.id).filter(reply.c.cancelled),
                    func.coalesce(
                        func.sum(reply.c.prompt_tokens + reply.c.completion_tokens).filter(
                            burst.c.status == "superseded"
                        ),
                        0,
                    ),
                    func.coalesce(func.sum(reply.c.prompt_tokens + reply.c.completion_tokens), 0),
                )
                .join(burst, burst.c.id == reply.c.burst_id)
                .join(conversation, conversation.c.id == burst.c.conversation_id)
                .where(conversation.c.account_id == sender.account_id)
            )
        ).one()
    sent = [b for b in bursts if b.status == "sent"]
    recorded: dict[int, list[tuple[int, datetime]]] = {}
    for m in messages:
        recorded.setdefault(m.conversation_id, []).append((m.message_id, m.received_at))
    stale = 0
    for b in sent:
        # A message of its chat recorded before the reply went out, that it does not answer
        # and no earlier reply answered: the user had said more.
        answered_before = {
            mid
            for other in sent
            if other.conversation_id == b.conversation_id and other.flushed_at <= b.flushed_at
            for mid in other.message_ids
        }
        if any(
            mid not in answered_before and at < b.sent_at for mid, at in recorded[b.conversation_id]
        ):
            stale += 1
    flush_to_send = [(b.sent_at - b.flushed_at).total_seconds() for b in sent]
    waited = [(b.sent_at - b.last_message_at).total_seconds() for b in sent]
    total_calls, cancelled, discarded_tokens, all_tokens = calls
    answered = sum(len(b.message_ids) for b in sent)
    return {
        "mode": mode,
        "conversations": len(recorded),
        "messages": load.messages,
        "answered": answered,
        "replies": len(sent),
        "replies_per_conversation": len(sent) / max(1, len(recorded)),
        "stale_replies": stale,
        "superseded": sum(1 for b in bursts if b.status == "superseded"),
        "llm_calls_per_message": total_calls / load.messages,
        "cancelled_calls": cancelled,
        "discarded_token_share": discarded_tokens / all_tokens if all_tokens else 0.0,
        "tokens_per_message": all_tokens / load.messages,
        "flush_to_send_p50_s": percentile(flush_to_send, 0.5),
        "flush_to_send_p99_s": percentile(flush_to_send, 0.99),
        "last_message_to_reply_p50_s": percentile(waited, 0.5),
        "last_message_to_reply_p99_s": percentile(waited, 0.99),
    }


def markdown(results: dict[str, Any]) -> str:
    rows = results["modes"]
    lines = [
        f"# Mid-reply bench, {results['when']}",
        "",
        f"{results['conversations']} conversations, a burst of 1-4 messages each; half write "
        f"one more message after the {DEBOUNCE:g} s quiet period, while the echo LLM takes "
        f"{LLM_SECONDS:g} s a call. One `lull worker`.",
        "",
        "| figure | " + " | ".join(r["mode"] for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for name in (
        "messages",
        "answered",
        "replies",
        "replies_per_conversation",
        "stale_replies",
        "superseded",
        "llm_calls_per_message",
        "cancelled_calls",
        "tokens_per_message",
        "discarded_token_share",
        "flush_to_send_p50_s",
        "flush_to_send_p99_s",
        "last_message_to_reply_p50_s",
        "last_message_to_reply_p99_s",
    ):
        cells = [r[name] for r in rows]
        shown = [f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells]
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


async def main(conversations: int) -> dict[str, Any]:
    work_dir = Path(".lull") / f"bench-mid-{uuid.uuid4().hex[:6]}"
    work_dir.mkdir(parents=True)
    settings = load_settings(
        data_dir=work_dir,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        task_queue=f"bench-{uuid.uuid4().hex[:6]}",
        debounce_seconds=DEBOUNCE,
        log_level="WARNING",
    )
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "conversations": conversations,
        "modes": [],
    }
    try:
        async with lull_runtime(settings) as rt:
            workers = WorkerProcesses(rt, work_dir, LULL_ECHO_DELAY_SECONDS=str(LLM_SECONDS))
            try:
                await workers.scale_to(1)
                # The same load for both, each on an account of its own.
                load = afterthought_load(conversations, seed=20261207)
                for mode in ("supersede", "queue"):
                    results["modes"].append(await measure_mode(rt, mode, load))
            finally:
                await workers.close()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    out = asyncio.run(main(args.conversations))
    text = markdown(out)
    print(text)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stamp}-mid-reply.md").write_text(text)
    (RESULTS / f"{stamp}-mid-reply.json").write_text(json.dumps(out, indent=2, default=str))
    print(f"({time.monotonic() - started:.0f} s)")
