"""The LLM activity: one call per burst, stored so a retry never pays twice.

Once the LLM has answered, the reply is stored before the attempt gives up: a Postgres
outage is waited out inside the attempt (heartbeating) for as long as the attempt may
run, because a retried attempt would call the LLM again. And only one attempt calls at a
time: Temporal delivers an activity at least once (two attempts ran at once around a
server restart in the chaos run, each paying), so the caller claims the burst in Postgres
for a short lease it renews while calling; another attempt waits for the reply, or for
the lease to lapse if the caller's worker died. The cases left that pay twice: a worker
that dies (or is shut down past its grace) between the answer and the stored reply, and
a call that outlives the LLM timeout (abandoned and retried, yet billed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import from_llm_error, missing
from activities.heartbeat import heartbeating, repeating
from activities.host import ActivityHost
from activities.spend import count_discarded
from db.errors import database_unavailable, describe_database_error
from db.queries import bursts as db_bursts
from db.queries import conversations as db_conversations
from db.queries import replies as db_replies
from llm.base import Completion, LLMError, LLMProvider, Prompt
from workflows.commands import BUILTIN_COMMANDS, REFRESH_REPLY, help_text
from workflows.error_types import ErrorType
from workflows.payloads import GenerateReplyInput, GenerateReplyResult

log = logging.getLogger("lull.replies")

MAX_STORED_COST = Decimal("999999.99999999")
COST_QUANTUM = Decimal("0.00000001")
# Waiting out a Postgres outage to store a paid reply: backoff, and the margin left
# before the attempt's own deadline when it gives up.
STORE_RETRY_FIRST_SECONDS = 0.5
STORE_RETRY_MAX_SECONDS = 10.0
STORE_DEADLINE_MARGIN = timedelta(seconds=5)
# The claim on a burst's LLM call: renewed this often while the call runs, lapsing this
# long after the caller stopped renewing it (a dead worker's, well before its activity's
# 30 s heartbeat timeout brings the retry).
CLAIM_SECONDS = 15.0
CLAIM_RENEW_SECONDS = 5.0
WAIT_POLL_SECONDS = 0.5
# A cancelled call's prompt tokens are estimated at this many characters a token.
CHARS_PER_TOKEN = 4
BURST_SUPERSEDED = ErrorType.BURST_SUPERSEDED


@dataclass(frozen=True)
class ReplyOptions:
    default_model: str
    default_system_prompt: str
    history_bursts: int
    price_prompt_per_1k: Decimal = Decimal(0)
    price_completion_per_1k: Decimal = Decimal(0)
    commands: frozenset[str] = frozenset(BUILTIN_COMMANDS)

    def cost(self, completion: Completion) -> Decimal:
        cost = (
            self.price_prompt_per_1k * completion.prompt_tokens
            + self.price_completion_per_1k * completion.completion_tokens
        ) / 1000
        # Numeric(14, 8): a cost the column cannot hold would fail the store after the call
        # was paid; it is capped (and logged) instead.
        if cost > MAX_STORED_COST:
            log.warning("reply cost %s exceeds what is stored; storing %s", cost, MAX_STORED_COST)
            return MAX_STORED_COST
        return cost.quantize(COST_QUANTUM)


class ReplyActivities(ActivityHost):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: LLMProvider,
        options: ReplyOptions,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._provider = provider
        self._options = options

    @activity.defn(name="generate_reply")
    async def generate_reply(self, input: GenerateReplyInput) -> GenerateReplyResult:
        job = await self._prepare(input.burst_key)
        if job.superseded:
            # A retried attempt of a call cancelled by a supersede: nothing to pay for.
            raise ApplicationError(
                f"burst {input.burst_key} was superseded; no reply is generated",
                type=BURST_SUPERSEDED,
                non_retryable=True,
            )
        if job.stored is not None:
            return GenerateReplyResult(job.stored.id, len(job.stored.text), reused=True)
        if job.builtin is not None:
            # /start, /help, /refresh: answered from the account's texts, no LLM call.
            completion = Completion(job.builtin, "command", 0, 0)
            return await self._store(job, completion, refresh=job.command == "refresh")
        if not await self._claim(job):
            return await self._wait_for_other_attempt(job)
        # The claim is held until the reply is stored: a store waiting out an outage still
        # keeps a duplicate attempt from paying.
        async with heartbeating(llm_call=True), self._holding_claim(job):
            try:
                completion = await self._provider.complete(job.prompt, model=job.model)
            except LLMError as exc:
                await self._release(job)
                raise from_llm_error(exc) from exc
            except asyncio.CancelledError:
                # Cancelled through Temporal (the burst was superseded): the HTTP request is
                # aborted with this task. Its spend is recorded like any other.
                await self._record_cancelled(job)
                raise
            return await self._store_paid(job, completion)

    async def _record_cancelled(self, job: _Job) -> None:
        """Store a cancelled call's reply row: no text, its prompt tokens estimated (a
        provider reports no usage for an aborted request), so discarded spend is counted.
        Best effort: the activity is going away."""
        prompt_chars = len(job.prompt.system) + sum(len(t) for t in job.prompt.burst)
        prompt_chars += sum(len(u) + len(a) for u, a in job.prompt.history)
        estimate = Completion("", job.model, -(-prompt_chars // CHARS_PER_TOKEN), 0)
        cost = self._options.cost(estimate)
        try:
            async with self._sessionmaker() as session, session.begin():
                await db_replies.insert_reply(
                    session,
                    burst_id=job.burst_id,
                    text="",
                    model=job.model,
                    prompt_tokens=estimate.prompt_tokens,
                    completion_tokens=0,
                    cost=cost,
                    cancelled=True,
                )
                await db_bursts.release_generation(session, job.burst_id)
        except Exception as exc:
            log.warning("the cancelled call of burst %s was not recorded: %s", job.burst_id, exc)
        count_discarded(estimate.prompt_tokens, cost, how="cancelled")

    async def _claim(self, job: _Job) -> bool:
        async with self._sessionmaker() as session, session.begin():
            return await db_bursts.claim_generation(session, job.burst_id, seconds=CLAIM_SECONDS)

    async def _release(self, job: _Job) -> None:
        with contextlib.suppress(Exception):  # best effort: the lease lapses anyway
            async with self._sessionmaker() as session, session.begin():
                await db_bursts.release_generation(session, job.burst_id)

    def _holding_claim(self, job: _Job) -> contextlib.AbstractAsyncContextManager[None]:
        async def renew() -> None:
            with contextlib.suppress(Exception):  # Postgres down: the lease may lapse
                async with self._sessionmaker() as session, session.begin():
                    await db_bursts.renew_generation(session, job.burst_id, seconds=CLAIM_SECONDS)

        return repeating(renew, every=CLAIM_RENEW_SECONDS)

    async def _wait_for_other_attempt(self, job: _Job) -> GenerateReplyResult:
        """Another attempt is calling the LLM for this burst: take its reply when stored,
        or the call over once its lease lapsed (its worker died)."""
        async with heartbeating():
            while True:
                await asyncio.sleep(WAIT_POLL_SECONDS)
                async with self._sessionmaker() as session:
                    replied, lapsed = await db_bursts.reply_or_claim_lapsed(session, job.burst_id)
                    stored = await db_replies.load_reply(session, job.burst_id) if replied else None
                if stored is not None:
                    return GenerateReplyResult(stored.id, len(stored.text), reused=True)
                if replied:
                    # It moved on with no reply to take (dropped or failed meanwhile):
                    # starting over would wait on it again, heartbeating forever.
                    raise ApplicationError(
                        f"burst {job.burst_key} moved on without a reply; nothing to generate",
                        type=ErrorType.BURST_CLOSED,
                        non_retryable=True,
                    )
                if lapsed:
                    break
        return await self.generate_reply(GenerateReplyInput(job.burst_key))

    async def _store_paid(self, job: _Job, completion: Completion) -> GenerateReplyResult:
        """Store a reply the LLM was paid for, waiting out a Postgres outage within this
        attempt's time: the attempt's retry would pay again."""
        delay = STORE_RETRY_FIRST_SECONDS
        async with heartbeating():
            while True:
                try:
                    return await self._store(job, completion)
                except Exception as exc:
                    if not database_unavailable(exc) or not _time_left_for(delay):
                        raise
                    log.warning(
                        "storing the reply of burst %s failed (%s); retrying in %.1f s",
                        job.burst_id,
                        describe_database_error(exc),
                        delay,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX_SECONDS)

    async def _prepare(self, key: str) -> _Job:
        """Load what the call needs in one short transaction (no connection held over the call)."""
        async with self._sessionmaker() as session:
            burst = await db_bursts.burst_to_answer(session, key)
            if burst is None:
                raise missing(f"burst {key}")
            job = _Job(
                key, burst.id, burst.conversation_id, burst.model or self._options.default_model
            )
            if burst.status == "superseded":
                job.superseded = True
                return job
            if burst.reply_id is not None and burst.reply_text is not None:  # both or neither
                job.stored = StoredReply(burst.reply_id, burst.reply_text)
                return job
            texts = list(burst.texts)
            job.command = burst.command
            if job.command in BUILTIN_COMMANDS:
                # The row carries the account's start and help texts.
                job.builtin = builtin_reply(job.command, burst, self._options.commands)
                return job
            history = await db_replies.recent_turns(
                session,
                conversation_id=burst.conversation_id,
                epoch=burst.context_epoch,
                before_burst_id=burst.id,
                limit=self._options.history_bursts,
            )
        system = burst.system_prompt or self._options.default_system_prompt
        job.prompt = Prompt(system=system, history=history, burst=texts)
        return job

    async def _store(
        self, job: _Job, completion: Completion, *, refresh: bool = False
    ) -> GenerateReplyResult:
        async with self._sessionmaker() as session, session.begin():
            reply_id = await db_replies.insert_reply(
                session,
                burst_id=job.burst_id,
                text=completion.text,
                model=completion.model,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                cost=self._options.cost(completion),
            )
            if reply_id is None:
                # A concurrent attempt stored its reply first; that one is the reply.
                stored = await db_replies.load_reply(session, job.burst_id)
                if stored is None:  # a reply row is never deleted
                    raise missing(f"reply of burst {job.burst_key}")
                return GenerateReplyResult(stored.id, len(stored.text), reused=True)
            if refresh:
                # Same transaction as the reply: a retry can never bump the epoch twice.
                await db_conversations.bump_context_epoch(session, job.conversation_id)
            await db_bursts.set_burst_status(
                session, job.burst_id, "replied", only_from=("persisted",), replied_at=func.now()
            )
        return GenerateReplyResult(reply_id=reply_id, chars=len(completion.text), reused=False)


@dataclass(frozen=True)
class StoredReply:
    id: int
    text: str


@dataclass
class _Job:
    """What one generate_reply call works from."""

    burst_key: str
    burst_id: int
    conversation_id: int
    model: str
    stored: StoredReply | None = None
    superseded: bool = False
    command: str | None = None
    builtin: str | None = None
    prompt: Prompt = field(default_factory=lambda: Prompt(system=""))


def _time_left_for(delay: float) -> bool:
    """Whether this attempt may still wait ``delay`` seconds and try again before its
    start-to-close or schedule-to-close deadline."""
    info = activity.info()
    deadlines = []
    if info.start_to_close_timeout:
        deadlines.append(info.started_time + info.start_to_close_timeout)
    if info.schedule_to_close_timeout:
        deadlines.append(info.scheduled_time + info.schedule_to_close_timeout)
    if not deadlines:
        return True
    return datetime.now(UTC) + timedelta(seconds=delay) + STORE_DEADLINE_MARGIN < min(deadlines)


def builtin_reply(command: str, account: Any, known: frozenset[str]) -> str:
    if command == "start":
        return str(account.start_text)
    if command == "help":
        return help_text(account.help_text, known)
    return REFRESH_REPLY
