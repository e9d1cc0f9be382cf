"""The faults the chaos run injects, each a coroutine that hurts one part and lets it heal.

Processes come back by themselves (the cluster's supervisor); servers are restarted here.
A fault returns what it did and whether it hit (a kill "during an LLM call" with no call
in flight did not), so the run can show that every kind really happened.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from temporalio.service import RPCError

from db.engine import make_engine
from testkit.fake_llm import Answer
from tests.chaos.cluster import BOT, LLM_TIMEOUT_SECONDS, Cluster
from tests.chaos.load import chat_key_sql
from tests.e2e.helpers import ROOT, Process, lull_command
from workflows.conversation import ConversationWorkflow
from workflows.payloads import ConversationState

Fault = Callable[[Cluster, random.Random], Awaitable[str]]


@dataclass
class FaultLog:
    """What the faults did, in order, and which kinds hit at least once."""

    lines: list[str] = field(default_factory=list)
    hit: set[str] = field(default_factory=set)
    missed: list[str] = field(default_factory=list)
    # LLM calls in flight when their workers were killed: each may be paid twice.
    killed_mid_call: int = 0
    # Times two faults came at once.
    pairs: int = 0
    # Faults meant to fail bursts (an outage beyond the outage window): the run retries
    # the failed bursts afterwards, as an operator would (`lull retry --all-failed`).
    fails_bursts: bool = False

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.lines)

    @property
    def kinds_not_hit(self) -> list[str]:
        missing = [f.__name__ for f in ALL if f.__name__ not in self.hit]
        return missing + ([] if self.pairs else ["two_at_once"])


async def kill_a_worker(cluster: Cluster, rng: random.Random) -> str:
    """SIGKILL one worker wherever it is: usually debouncing, sometimes mid-activity."""
    victim = rng.choice(cluster.named("worker"))
    in_flight = cluster.llm.in_flight  # at most these calls die with it
    await _kill(cluster, victim)
    return f"SIGKILL {victim.name} with {in_flight} LLM calls in flight"


async def _kill(cluster: Cluster, victim: Process) -> None:
    if victim.proc is not None and victim.running:
        cluster.kills.append((victim.proc.pid, asyncio.get_running_loop().time()))
    await victim.signal(signal.SIGKILL)


async def kill_workers_during_llm_call(cluster: Cluster, rng: random.Random) -> str:
    """SIGKILL every worker while an LLM call is in flight (whoever holds it dies)."""
    cluster.llm.latency = 1.5
    try:
        for _ in range(100):
            if cluster.llm.in_flight:
                break
            await asyncio.sleep(0.05)
        caught = cluster.llm.in_flight
        for worker in cluster.named("worker"):
            await _kill(cluster, worker)
    finally:
        cluster.llm.latency = 0.0
    return f"SIGKILL all workers with {caught} LLM calls in flight" + (
        "" if caught else " (missed)"
    )


async def kill_listener_after_telegram_took_a_send(cluster: Cluster, rng: random.Random) -> str:
    """Telegram carries out the next send, its answer is lost, and the listener dies."""
    telegram = cluster.telegram
    telegram.withhold_send_answers = 1
    for _ in range(200):
        if telegram.withhold_send_answers == 0:
            break
        await asyncio.sleep(0.05)
    took = telegram.withhold_send_answers == 0
    telegram.withhold_send_answers = 0
    (listener,) = cluster.named("listener")
    await listener.signal(signal.SIGKILL)
    return "SIGKILL listener " + ("after a send reached Telegram" if took else "(missed)")


async def kill_listener(cluster: Cluster, rng: random.Random) -> str:
    (listener,) = cluster.named("listener")
    await listener.signal(signal.SIGKILL)
    return "SIGKILL listener"


async def stop_listener(cluster: Cluster, rng: random.Random) -> str:
    (listener,) = cluster.named("listener")
    code = await listener.signal(signal.SIGTERM)
    return f"SIGTERM listener (exit {code})"


async def restart_temporal(cluster: Cluster, rng: random.Random) -> str:
    down = rng.uniform(1, 4)
    await cluster.restart_temporal(down)
    return f"Temporal dev server down {down:.1f} s"


async def restart_postgres(cluster: Cluster, rng: random.Random) -> str:
    down = rng.uniform(1, 4)
    await cluster.restart_postgres(down)
    return f"Postgres crashed, down {down:.1f} s"


async def llm_outage(cluster: Cluster, rng: random.Random) -> str:
    answer, what = rng.choice(
        [
            (Answer(status=500), "500"),
            (Answer(status=429, headers={"retry-after": "1"}), "429 retry-after 1"),
        ]
    )
    seconds = rng.uniform(3, 8)
    cluster.llm.failing = answer
    await asyncio.sleep(seconds)
    cluster.llm.failing = None
    return f"LLM answered {what} for {seconds:.1f} s"


async def llm_slower_than_its_timeout(cluster: Cluster, rng: random.Random) -> str:
    """The LLM answers after the client gave up: each such call is billed, abandoned and
    retried (the README's second way to pay twice). The settings keep the client's timeout
    inside the activity's start-to-close, so the call is cut before Temporal times out the
    attempt (tests/app/test_settings.py)."""
    seconds = rng.uniform(3, 6)
    before = cluster.llm.abandoned
    cluster.llm.failing = Answer(delay=LLM_TIMEOUT_SECONDS + 1)
    await asyncio.sleep(seconds)
    cluster.llm.failing = None
    await asyncio.sleep(1.5)  # the calls still being answered
    abandoned = cluster.llm.abandoned - before
    return f"LLM slower than its {LLM_TIMEOUT_SECONDS:g} s timeout for {seconds:.1f} s: " + (
        f"{abandoned} answers abandoned" if abandoned else "(missed: no call came)"
    )


async def flood_wait(cluster: Cluster, rng: random.Random) -> str:
    times = rng.randint(1, 3)
    cluster.telegram.world.flood_wait_next(BOT, seconds=2, times=times)
    return f"Telegram FLOOD_WAIT_2 on the next {times} sends"


async def partition_a_link(cluster: Cluster, rng: random.Random) -> str:
    """A half-open partition: a link's connections stay open and nothing passes for a few
    seconds (no RST, no FIN), then what was sent arrives, as TCP retransmits it."""
    name = rng.choice(sorted(cluster.links))
    link = cluster.links[name]
    seconds = rng.uniform(2, 6)
    link.frozen = True
    await asyncio.sleep(seconds)
    link.frozen = False
    return f"{name} partitioned (half-open) for {seconds:.1f} s"


async def slow_temporal(cluster: Cluster, rng: random.Random) -> str:
    """Temporal slow rather than down: every chunk between workers and the server waits."""
    link = cluster.links["worker-temporal"]
    latency, seconds = rng.choice([0.05, 0.2, 0.5]), rng.uniform(4, 10)
    link.latency = latency
    await asyncio.sleep(seconds)
    link.latency = 0.0
    return f"Temporal {latency * 1000:.0f} ms slower for {seconds:.1f} s"


async def postgres_restart_then_new_listener(cluster: Cluster, rng: random.Random) -> str:
    """Postgres restarts (the listener's lock goes with its connection), and the listener
    is replaced meanwhile: the new one must not serve beside an old one still connected."""
    down = rng.uniform(1, 3)
    await cluster.restart_postgres(down)
    (listener,) = cluster.named("listener")
    await listener.signal(signal.SIGKILL)
    return f"Postgres down {down:.1f} s, then the listener replaced"


async def login_while_serving(cluster: Cluster, rng: random.Random) -> str:
    """An operator runs `lull login` for the served account: refused while the listener
    holds it, and it never moves the update state."""
    proc = await asyncio.create_subprocess_exec(
        *lull_command("login"),
        cwd=ROOT,
        env=cluster.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    said = out.decode(errors="replace")
    if proc.returncode == 1 and "already served" in said:
        return "lull login refused beside the listener"
    return f"lull login ended {proc.returncode} (listener restarting?): {said.strip()[-80:]}"


async def deploy_a_bad_config(cluster: Cluster, rng: random.Random) -> str:
    """A worker deployed with a value that would poison conversations: refused at start,
    naming the variable, before it could touch anything."""
    variable, value = rng.choice(
        [
            ("LULL_MAX_WAIT_SECONDS", "inf"),
            ("LULL_IDLE_CLOSE_SECONDS", "1e30"),
            ("LULL_MAX_CACHED_WORKFLOWS", "1000000000000"),
            ("LULL_TG_PLACEHOLDERS", '{"photo": "[photo {"}'),
        ]
    )
    proc = await asyncio.create_subprocess_exec(
        *lull_command("worker"),
        cwd=ROOT,
        env={**cluster.env, variable: value},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    refused = proc.returncode == 2 and variable in out.decode(errors="replace")
    return f"worker with {variable}={value} " + ("refused" if refused else "(missed: ran)")


async def flood_wait_beyond_the_outage_window(cluster: Cluster, rng: random.Random) -> str:
    """Telegram floods the account for an hour, longer than the outage window: bursts
    fail at once (recorded, alerted), not hold their chats for an hour; ops retry them."""
    seconds = rng.uniform(3, 6)
    before = cluster.telegram.world.flood_refused
    cluster.telegram.world.flood_for(BOT, real_seconds=seconds, says_seconds=FLOOD_BEYOND_WINDOW)
    await asyncio.sleep(seconds)
    refused = cluster.telegram.world.flood_refused - before
    # The hour passes: Telethon remembers the wait and refuses sends itself until then, so
    # a listener restart stands for the hour (a fresh client has no such memory).
    (listener,) = cluster.named("listener")
    await listener.signal(signal.SIGTERM)
    return f"Telegram FLOOD_WAIT_{FLOOD_BEYOND_WINDOW} for {seconds:.1f} s: " + (
        f"{refused} sends refused" if refused else "(missed: no send came)"
    )


async def revoke_the_session(cluster: Cluster, rng: random.Random) -> str:
    """The bot's session is revoked (another device, a token reset); an operator logs it in
    again a few seconds later. The listener stops loudly; sends meanwhile fail."""
    world = cluster.telegram.world
    before = cluster.telegram.refused_unauthorized
    seconds = rng.uniform(3, 6)
    world.revoke(BOT)
    await asyncio.sleep(seconds)
    world.accounts[BOT].authorized = True
    refused = cluster.telegram.refused_unauthorized - before
    return f"session revoked for {seconds:.1f} s: " + (
        f"{refused} requests refused" if refused else "(missed: no request came)"
    )


async def temporal_loses_a_run(cluster: Cluster, rng: random.Random) -> str:
    """Temporal forgets a conversation still collecting a burst (as a server that lost its
    last commits forgets the signals it took): the messages are recorded, no run holds
    them, and the listener's sweep must signal them again."""

    def collecting(state: ConversationState) -> bool:
        # Only a run that will not flush before the terminate lands: a run lost mid-burst
        # is the other kind (a persisted burst no run answers).
        soon = datetime.now(UTC) + timedelta(seconds=0.25)
        unhurried = state.deadline is not None and state.deadline > soon
        return bool(state.buffered) and state.phase == "collecting" and unhurried

    return await _lose_a_run(cluster, rng, collecting, "collecting a burst")


# Phases of a burst whose reply is stored or not yet asked for: a run lost while its LLM
# call is in flight may pay the call twice (it is aborted, then made again), which is the
# worker kill's fault, counted there.
MID_BURST_PHASES = ("persisting", "sending", "holding")


async def temporal_loses_a_run_mid_burst(cluster: Cluster, rng: random.Random) -> str:
    """Temporal forgets a conversation between its burst's flush and its reply: the burst
    is recorded (persisted or replied) and no run will finish it. The sweep finds it
    unfinished, asks the chat's run (gone, or a newer one that never had those messages),
    and signals them again; the new run flushes them under the same key, so the stranded
    row and a reply already made are taken up, and the reply goes out once."""

    def mid_burst(state: ConversationState) -> bool:
        return state.phase in MID_BURST_PHASES

    return await _lose_a_run(cluster, rng, mid_burst, "mid-burst")


async def _lose_a_run(
    cluster: Cluster, rng: random.Random, wanted: Callable[[ConversationState], bool], what: str
) -> str:
    assert cluster.temporal is not None
    client = cluster.temporal.client
    running = "WorkflowType = 'ConversationWorkflow' AND ExecutionStatus = 'Running'"
    loop = asyncio.get_running_loop()
    # In short passes, so a run that starts collecting is soon seen.
    until = loop.time() + 15
    seen: Counter[str] = Counter()
    try:
        while loop.time() < until:
            ids = [wf.id async for wf in client.list_workflows(running)]
            seen["runs listed"] += len(ids)
            rng.shuffle(ids)
            for wf_id in ids[:12]:
                handle = client.get_workflow_handle(wf_id)
                state = await handle.query(ConversationWorkflow.state)
                seen[f"{state.phase} {bool(state.buffered)} {state.deadline_rule}"] += 1
                if wanted(state):
                    await handle.terminate("chaos: Temporal lost this run")
                    await _note_orphans(cluster, wf_id.rsplit("/c-", 1)[-1])
                    return (
                        f"Temporal lost a run {what} ({state.phase}, "
                        f"{state.buffered} messages buffered)"
                    )
            await asyncio.sleep(0.2)
    except RPCError as exc:
        return f"(missed: Temporal answered {exc.status.name})"
    return f"(missed: no run was {what}: {dict(seen)})"


async def _note_orphans(cluster: Cluster, chat_ref: str) -> None:
    """The lost run's messages (buffered, or in a burst it left unfinished): answered once
    the sweep signals them again, so later than the chat's newer messages (the checker
    lets them come out of order)."""
    rows = await _sql(
        cluster,
        f"select {chat_key_sql('m.chat_id', 'c.topic_id')} as chat_id, m.text"
        " from message m join conversation c"
        " on c.id = m.conversation_id left join burst b on b.id = m.burst_id"
        " where c.chat_ref = :ref and m.unanswered_reason is null"
        " and (m.burst_id is null or b.status in ('persisted', 'replied'))",
        ref=chat_ref,
    )
    cluster.orphaned.update((row.chat_id, row.text) for row in rows)


async def _sql(cluster: Cluster, statement: str, **params: object) -> list[Any]:
    """One statement on the cluster's Postgres, in its own transaction."""
    engine = make_engine(cluster.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return list(await conn.execute(text(statement), params))
    finally:
        await engine.dispose()


async def postgres_loses_its_last_commits(cluster: Cluster, rng: random.Random) -> str:
    """The newest messages' rows vanish, as after a failover to a replica behind: their
    signals still reach the workflow, which must report them (LOST MESSAGES), or the
    listener records them again from Telegram; never silently gone."""
    try:
        gone = await _sql(
            cluster,
            "delete from message m using conversation c where c.id = m.conversation_id"
            " and m.id in (select id from message"
            " where burst_id is null and unanswered_reason is null"
            " and deleted_at is null and received_at > now() - interval '3 seconds'"
            " order by id desc limit 3) returning"
            f" {chat_key_sql('m.chat_id', 'c.topic_id')} as chat_id, m.message_id, m.text",
        )
    except (OSError, DBAPIError):
        return "(missed: Postgres is down)"
    for row in gone:
        cluster.vanished[(row.chat_id, row.text)] = row.message_id
    return f"Postgres lost its last {len(gone)} message rows" if gone else "(missed: none new)"


ALL: tuple[Fault, ...] = (
    kill_a_worker,
    kill_workers_during_llm_call,
    kill_listener_after_telegram_took_a_send,
    kill_listener,
    stop_listener,
    restart_temporal,
    restart_postgres,
    llm_outage,
    llm_slower_than_its_timeout,
    flood_wait,
    partition_a_link,
    slow_temporal,
    postgres_restart_then_new_listener,
    login_while_serving,
    deploy_a_bad_config,
    flood_wait_beyond_the_outage_window,
    revoke_the_session,
    temporal_loses_a_run,
    temporal_loses_a_run_mid_burst,
    postgres_loses_its_last_commits,
)
# Losing a run needs one in the right phase, which a backlog can take away for a while:
# these hunt all through the load, beside the others, instead of holding up their turns.
HUNTED = (temporal_loses_a_run, temporal_loses_a_run_mid_burst)
FAILING_BURSTS = (flood_wait_beyond_the_outage_window, revoke_the_session)
# An hour: beyond the 30-minute outage window the chaos cluster runs with.
FLOOD_BEYOND_WINDOW = 3600
# Every this many faults, a second one comes at the same time.
TWO_AT_ONCE_EVERY = 3


async def inject(
    cluster: Cluster,
    rng: random.Random,
    *,
    seconds: float,
    every: tuple[float, float],
    log: FaultLog,
    overtime: float = 90.0,
) -> None:
    """Faults at random moments for ``seconds``: every kind once, shuffled, then at random.
    A kind still not hit by then (a loaded host makes each fault slower) has up to
    ``overtime`` more; the users keep writing until the faults are done."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    until = start + seconds
    order = [f for f in ALL if f not in HUNTED]
    rng.shuffle(order)
    hunts = [
        asyncio.create_task(_hunt(fault, cluster, rng, until + overtime, log, start))
        for fault in HUNTED
    ]
    try:
        await _one_at_a_time(cluster, rng, order, every, (until, until + overtime), log, start)
    finally:
        await asyncio.gather(*hunts)


async def _hunt(
    fault: Fault,
    cluster: Cluster,
    rng: random.Random,
    until: float,
    log: FaultLog,
    start: float,
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        what = await fault(cluster, rng)
        log.lines.append(f"{loop.time() - start:6.1f} s  {what}")
        if "(missed" not in what:
            log.hit.add(fault.__name__)
            return
        log.missed.append(fault.__name__)
        await asyncio.sleep(2)


async def _one_at_a_time(
    cluster: Cluster,
    rng: random.Random,
    order: list[Any],
    every: tuple[float, float],
    until: tuple[float, float],
    log: FaultLog,
    start: float,
) -> None:
    """``until``: when the load ends, and the latest the faults may go on to hit every kind."""
    loop = asyncio.get_running_loop()
    kinds = [f for f in ALL if f not in HUNTED]
    while True:
        await asyncio.sleep(rng.uniform(*every))
        now = loop.time()
        unhit = [f for f in kinds if f.__name__ not in log.hit]
        if now >= until[1] or (now >= until[0] and not unhit):
            return
        # Kinds that have not hit yet go first, so every kind really happens.
        pending = [f for f in kinds if f.__name__ not in log.hit]
        fault = order.pop(0) if order else rng.choice(pending or kinds)
        chosen = [fault]
        if len(log.lines) % TWO_AT_ONCE_EVERY == TWO_AT_ONCE_EVERY - 1:
            # The second comes from the kinds still to happen, so pairs do not crowd any out.
            others = order or [f for f in pending if f is not fault] or list(kinds)
            second = others.pop(0) if others is order else rng.choice(others)
            if second is not fault:
                chosen.append(second)
                log.pairs += 1
        results = await asyncio.gather(*(f(cluster, rng) for f in chosen))
        for done, what in zip(chosen, results, strict=True):
            both = " (with another fault at once)" if len(chosen) > 1 else ""
            log.lines.append(f"{loop.time() - start:6.1f} s  {what}{both}")
            if "(missed" in what:
                # Back in line: a kind that found nothing to hit (a backlog left no run
                # collecting, no LLM call came) gets another go soon, not only at the end.
                log.missed.append(done.__name__)
                if done not in order:
                    order.insert(1, done)
                continue
            log.hit.add(done.__name__)
            log.fails_bursts |= done in FAILING_BURSTS
            if done in (kill_workers_during_llm_call, kill_a_worker):
                log.killed_mid_call += int(what.split(" with ")[1].split()[0])
