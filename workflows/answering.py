"""Answering a flushed burst: persist it, ask the LLM once, send the reply, in that order.
With a ``Flight`` (the supersede release), a message from the burst's author before the
send supersedes the burst (workflows/mid_reply.py), and a ready reply waits while its
author types. Workflow code: the steps' timeouts and retries are in ``workflows/steps.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import steps
    from workflows.mid_reply import Flight, MidReplyVerdict
    from workflows.payloads import BufferedMessage, GenerateReplyResult, PersistBurstInput
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
    # The superseded burst whose messages this one answers.
    takes_over: str | None = None


# How answer_burst ended.
ANSWERED = "answered"
DROPPED = "dropped"
SUPERSEDED = "superseded"


async def answer_burst(
    burst: BurstToAnswer,
    *,
    send_task_queue: str,
    outage_window: timedelta,
    enter: Callable[[str, str], None],
    flight: Flight | None = None,
) -> str:
    """``enter(phase, details)`` shows each step as the run's phase. Returns ANSWERED,
    DROPPED (recorded, not answered) or SUPERSEDED (only with a ``flight``)."""
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
            takes_over=burst.takes_over,
        ),
        local=local,
        summary=f"persist {len(batch)} messages" + (f" ({drop_as})" if drop_as else ""),
    )
    if persisted.message_count == 0 or drop_as is not None:
        return DROPPED
    enter("generating", "generating reply")
    if flight is None:
        generated = await steps.generate_reply(burst.key, outage_window=outage_window)
    else:
        watched = await _generate_watched(burst.key, flight, outage_window)
        if watched is None or not await _ready_to_send(burst.key, flight, enter):
            return SUPERSEDED
        generated = watched
    # From here on the reply is never superseded: its chunks go out, and a message from
    # its author makes the next burst.
    enter("sending", f"sending reply ({generated.chars} chars)")
    await steps.send_reply(
        burst.key,
        task_queue=send_task_queue,
        outage_window=outage_window,
        heartbeat=steps.SEND_HEARTBEAT if since(PATCH_SEND_HEARTBEAT) else None,
    )
    return ANSWERED


async def _generate_watched(
    key: str, flight: Flight, outage_window: timedelta
) -> GenerateReplyResult | None:
    """The LLM call, cancelled if an author writes meanwhile and no bound keeps the burst;
    None once superseded. A failed call raises ActivityError, as unwatched."""
    handle = steps.start_generate(
        key, outage_window=outage_window, summary="generate reply (supersedable)"
    )
    while True:
        await workflow.wait_condition(lambda: handle.done() or flight.interrupted())
        if handle.done():
            return await handle
        decided = flight.decide(workflow.now())
        _count(decided, "call")
        if decided.supersede:
            handle.cancel()
            # TRY_CANCEL: resolved at once; the activity is told on its next heartbeat.
            with contextlib.suppress(ActivityError):
                await handle
        await steps.record_mid_reply(key, superseded=decided.supersede, rule=decided.rule)
        if decided.supersede:
            return None


async def _ready_to_send(key: str, flight: Flight, enter: Callable[[str, str], None]) -> bool:
    """Between the reply and its first chunk: an author's message supersedes it (within the
    bounds), and while an author types it waits for the typing lease. False: superseded."""
    while True:
        if flight.interrupted():
            decided = flight.decide(workflow.now())
            _count(decided, "ready")
            await steps.record_mid_reply(key, superseded=decided.supersede, rule=decided.rule)
            if decided.supersede:
                return False
        until = flight.hold_until(workflow.now())
        if until is None:
            return True
        enter("holding", f"holding the reply while the user types, until {until:%H:%M:%S} UTC")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                _woken(flight, flight.typing_changes),
                timeout=until - workflow.now(),
                timeout_summary="typing hold",
            )


def _count(decided: MidReplyVerdict, stage: str) -> None:
    """``lull_mid_reply``: by outcome (the rule) and stage ("call": during the LLM call,
    "ready": a reply made, not yet sent). The SDK skips it on replay."""
    workflow.metric_meter().create_counter(
        "lull_mid_reply", "messages from a burst's author before its reply went out"
    ).add(1, {"outcome": decided.kind, "stage": stage})


def _woken(flight: Flight, changes: int) -> Callable[[], bool]:
    """A held reply wakes when an author writes or their typing changes."""
    return lambda: flight.interrupted() or flight.typing_changes != changes
