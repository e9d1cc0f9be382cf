"""Drives a workload through Lull's ingest seam and records when each reply is sent.

The bench hosts the send queue itself, as a channel process would, with a sender that
notes the time of each send call; workers run as `lull worker` subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.wiring import Runtime
from bench.workload import Event, Workload
from channels.base import DedupingSender, SendTarget
from inbound.accounts import register_account
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor, RejectedMessageError

ECHO_COUNT = re.compile(r"^\[echo: (\d+) messages?\]")


@dataclass
class Sent:
    chat_id: int
    last_message_id: int
    messages: int
    at: float  # seconds after the run started


class RecordingSender(DedupingSender):
    """A channel that only notes when each reply's send call happened. A send repeated
    with a taken random_id (a send_reply retried under overload) is de-duplicated, as
    Telegram does, so it is not counted as a second answer."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0.0
        self.started_wall = 0.0  # time.time() at ``started``, to place database timestamps
        self.account_id = 0
        self.sent: list[Sent] = []
        # Seconds each message took through the ingest seam.
        self.seam_calls: list[float] = []
        # Messages per message signal the seam sent (several share one when they meet).
        self.messages_per_signal = 0.0

    async def deliver(self, target: SendTarget, text: str, message_id: int) -> None:
        now = asyncio.get_running_loop().time() - self.started
        match = ECHO_COUNT.match(text)
        count = int(match.group(1)) if match else 0
        self.sent.append(Sent(target.chat_id, target.reply_to or 0, count, now))


async def feed(
    ingestor: Ingestor, events: list[Event], started: float, seam_calls: list[float]
) -> None:
    """Play the events in real time, each chat in order, noting how long each message took
    through the seam (recorded in Postgres and signalled): a slow seam makes the chat's
    later messages late, and that lateness is part of the measured overhead. As the
    Telegram listener does, a chat's next event waits only until the message before it is
    recorded, so messages that meet in flight can share a signal."""
    loop = asyncio.get_running_loop()
    by_chat: dict[int, list[Event]] = {}
    for event in events:
        by_chat.setdefault(event.chat_id, []).append(event)

    async def chat(chat_events: list[Event]) -> None:
        in_flight: list[asyncio.Task[None]] = []
        for event in chat_events:
            delay = started + event.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if event.kind == "typing":
                await ingestor.typing(
                    chat_id=event.chat_id, sender_id=event.chat_id, action="typing"
                )
                continue
            incoming = IncomingMessage(
                chat_id=event.chat_id,
                sender_id=event.chat_id,
                message_id=event.message_id,
                text=f"m{event.message_id}",
                sent_at=datetime.now(UTC),
            )
            in_flight.append(await hand_over(ingestor, incoming, seam_calls))
        await asyncio.gather(*in_flight)

    await asyncio.gather(*(chat(evs) for evs in by_chat.values()))


async def hand_over(
    ingestor: Ingestor, incoming: IncomingMessage, seam_calls: list[float]
) -> asyncio.Task[None]:
    """Start ``incoming`` through the seam and return once it is recorded, with the task
    that finishes when its signal landed; that task notes the seam time. A transient
    failure (under overload: no free Postgres connection within 30 s) is retried with
    backoff, as the listener retries its jobs."""
    loop = asyncio.get_running_loop()
    recorded = asyncio.Event()

    async def through() -> None:
        called, delay = loop.time(), 0.2
        try:
            while True:
                try:
                    await ingestor.message(incoming, on_recorded=recorded.set)
                    break
                except (RejectedMessageError, ValueError):
                    raise
                except Exception as exc:  # noqa: BLE001 - retried, as the listener does
                    print(f"  retrying message {incoming.message_id}: {type(exc).__name__}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            recorded.set()  # the chat's next message goes in: recorded, or given up
        seam_calls.append(loop.time() - called)

    task = asyncio.create_task(through())
    await recorded.wait()
    return task


async def run_workload(rt: Runtime, workload: Workload, *, within: float) -> RecordingSender:
    """One run on a fresh account; returns the sends, once all messages are answered."""
    key = f"bench-{uuid.uuid4().hex[:8]}"
    account = await register_account(rt.sessionmaker, key=key, kind="replay", display_name=key)
    ingestor = rt.build_ingestor(account)
    sender = RecordingSender()
    async with rt.build_send_worker(account, sender):
        loop = asyncio.get_running_loop()
        sender.started, sender.started_wall = loop.time(), time.time()
        sender.account_id = account.id
        await feed(ingestor, workload.events, sender.started, sender.seam_calls)
        batches = ingestor.signal_batches
        sender.messages_per_signal = batches.items_sent / max(1, batches.batches_sent)
        deadline = loop.time() + within
        while sum(s.messages for s in sender.sent) < workload.messages:
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
    return sender


class WorkerProcesses:
    """`lull worker` subprocesses attached to the runtime's servers."""

    def __init__(self, rt: Runtime, log_dir: Path, **extra_env: str) -> None:
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("LULL_")}
        self._env.update(
            LULL_DATABASE_URL=rt.stack.database_url,
            LULL_TEMPORAL_ADDRESS=rt.stack.temporal_address,
            LULL_TASK_QUEUE=rt.settings.task_queue,
            # A configured database needs a key of its own; workers never hash with it.
            LULL_CHAT_HASH_KEY="bench-chat-hash-key-not-secret",
            LULL_LOG_LEVEL="WARNING",
            PYTHONWARNINGS="ignore",
            **extra_env,
        )
        self._log_dir = log_dir
        self.procs: list[asyncio.subprocess.Process] = []

    async def scale_to(self, count: int) -> None:
        while len(self.procs) < count:
            log = open(self._log_dir / f"worker-{len(self.procs)}.log", "ab")  # noqa: SIM115, ASYNC230
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "worker", env=self._env, stdout=log, stderr=log
            )
            self.procs.append(proc)
        while len(self.procs) > count:
            await self._stop(self.procs.pop())
        await asyncio.sleep(2.0)  # let them connect and poll

    def rss_kib(self) -> list[int]:
        return [rss_kib(p.pid) for p in self.procs]

    async def close(self) -> None:
        while self.procs:
            await self._stop(self.procs.pop())

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def burst_stages(rt: Runtime, sender: RecordingSender) -> list[tuple[int, int, float, float]]:
    """Per burst: (chat, last message id, flushed at, reply stored at), in run seconds,
    so the report can split the overhead into its steps."""
    from sqlalchemy import select

    from db.tables import burst, conversation, reply

    stmt = (
        select(
            conversation.c.chat_id,
            burst.c.message_ids,
            burst.c.flushed_at,
            reply.c.created_at,
        )
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .join(reply, reply.c.burst_id == burst.c.id)
        .where(conversation.c.account_id == sender.account_id)
    )
    async with rt.sessionmaker() as session:
        rows = list(await session.execute(stmt))
    return [
        (
            row.chat_id,
            max(row.message_ids),
            row.flushed_at.timestamp() - sender.started_wall,
            row.created_at.timestamp() - sender.started_wall,
        )
        for row in rows
    ]
