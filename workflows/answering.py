"""Answering a flushed burst: persist it, ask the LLM once, send the reply, in that order.
Workflow code: the steps' timeouts and retries are in ``workflows/steps.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import steps
    from workflows.payloads import BufferedMessage, PersistBurstInput
    from workflows.versions import (
        PATCH_LOCAL_PERSIST,
        PATCH_NO_EMPTY_TASKS,
        PATCH_SEND_HEARTBEAT,
        since,
    )


@dataclass(frozen=True)
class BurstToAnswer:
    conversation_id: int
    key: str
    batch: list[BufferedMessage]
    message_ids: list[int]
    reason: str
    # "cleared" or "paused": recorded, not answered.
    drop_as: str | None


async def answer_burst(
    burst: BurstToAnswer,
    *,
    send_task_queue: str,
    outage_window: timedelta,
    enter: Callable[[str, str], None],
) -> None:
    """``enter(phase, details)`` shows each step as the run's phase."""
    batch, drop_as = burst.batch, burst.drop_as
    enter("persisting", f"persisting burst of {len(batch)} messages")
    local = since(PATCH_LOCAL_PERSIST) and not since(PATCH_NO_EMPTY_TASKS)
    persisted = await steps.persist_burst(
        PersistBurstInput(
            conversation_id=burst.conversation_id,
            burst_key=burst.key,
            message_ids=burst.message_ids,
            reason=burst.reason,
            first_message_at=min(m.received_at for m in batch),
            last_message_at=max(m.received_at for m in batch),
            flushed_at=workflow.now(),
            drop_as=drop_as,
            # A command is always a burst of its own.
            command=batch[0].command if len(batch) == 1 else None,
        ),
        local=local,
        summary=f"persist {len(batch)} messages" + (f" ({drop_as})" if drop_as else ""),
    )
    if persisted.message_count == 0 or drop_as is not None:
        return
    enter("generating", "generating reply")
    generated = await steps.generate_reply(burst.key, outage_window=outage_window)
    enter("sending", f"sending reply ({generated.chars} chars)")
    await steps.send_reply(
        burst.key,
        task_queue=send_task_queue,
        outage_window=outage_window,
        heartbeat=steps.SEND_HEARTBEAT if since(PATCH_SEND_HEARTBEAT) else None,
    )
