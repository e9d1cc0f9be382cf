"""The checker, Jepsen-style: after the faults stop and everything drains, compare what
users sent (Telegram accepted it), what Postgres recorded and what users saw.

- lost: an accepted message that no visible reply answers and no burst is still working on;
- duplicated: a message answered by two visible replies, or held by two bursts (a burst
  superseded by a timed-out workflow task's retry holds nothing);
- in doubt: a message whose burst is still persisted/replied (not finished) at the end, or
  such a burst owning no message;
- unexpected: a visible bot message that answers nothing we sent (e.g. an error notice),
  a failed burst, or a recorded message nobody sent;
- out of order: a user saw the answer to a later message before an earlier one's;
- paid twice: a burst the LLM answered (200) more than once, beyond the two cases the
  README allows: calls in flight when their workers were killed, and calls answered after
  the client's timeout had given up on them;
- Temporal: a failed workflow task (a nondeterminism or a bug, not a timeout), a retry
  workflow still running, or an open conversation with an activity still pending.

The checks never rely on the fake Telegram de-duplicating a random_id forever (real
Telegram's window is finite): a duplicate counts by replies users saw and bursts held.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.client import Client

from db.tables import account, burst, conversation, delivery, message, reply
from tests.chaos.cluster import BOT, FORUM, HANDOFF_MINUTES, OWNER, Cluster
from tests.chaos.load import (
    GROUP_CHAT,
    IN_GROUP,
    OWNER_NOTE,
    TOPIC_KEY_BASE,
    Accepted,
    topic_of_key,
)
from workflows.commands import REFRESH_REPLY
from workflows.ids import conversation_workflow_id

REPLY_PREFIX = "re:"
# In /help's answer (workflows.commands.help_text), whatever the account's intro.
HELP_MARK = "\nCommands:\n"
# The account's default error text (db/tables.py), sent when a burst fails.
ERROR_NOTICE = "Sorry, something went wrong."
NOTICE_SEEN = "an error notice"
# What a run logs when the sweep brings it a message whose signal was lost.
SWEPT_MARK = "its signal never arrived"


@dataclass
class Report:
    accepted: int = 0
    bursts_sent: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    llm_requests: int = 0
    llm_completions: int = 0
    out_of_order: list[str] = field(default_factory=list)
    paid_twice: list[str] = field(default_factory=list)
    # How many bursts may be paid twice: LLM calls in flight when their workers died.
    paid_twice_allowed: int = 0
    failed_tasks: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    # Bursts failed by a fault meant to fail them, then retried by ops, and the error
    # notices their users saw meanwhile.
    retried: int = 0
    notices: int = 0
    # Messages whose rows a fault deleted, unanswered and reported as LOST MESSAGES.
    vanished_reported: int = 0
    # Retried bursts refused again as SendInDoubt (a send never answered, long before),
    # and of their messages those users never saw: failed loudly, left to the operator.
    sends_in_doubt: int = 0
    unsent_in_doubt: int = 0
    # Bursts superseded by their author's message before their reply went out; replies of
    # theirs that were generated and discarded (paid, allowed); any of those sent (stale).
    superseded: int = 0
    discarded_answers: int = 0
    stale_sent: list[str] = field(default_factory=list)
    # Messages to the user account recorded unanswered while its owner had the chat
    # (a handoff), and handoffs its owner made.
    paused_by_handoff: int = 0
    handoffs: int = 0
    # For a run that is not clean: what Temporal says of each conversation with an
    # unfinished burst or an unanswered message (the post-mortem's first page).
    diagnosis: list[str] = field(default_factory=list)

    @property
    def paid_twice_beyond_kills(self) -> int:
        return max(0, len(self.paid_twice) - self.paid_twice_allowed)

    @property
    def clean_apart_from_cost(self) -> bool:
        """Every check but the extra LLM answers: their allowance counts a killed worker's
        calls only while the fake LLM is answering them, not in the moment between an
        answer and its stored reply, so it undercounts (the short run reports, make chaos
        asserts)."""
        return not (
            self.lost
            or self.duplicated
            or self.in_doubt
            or self.unexpected
            or self.out_of_order
            or self.failed_tasks
            or self.stuck
            or self.stale_sent
        )

    @property
    def clean(self) -> bool:
        return self.clean_apart_from_cost and not self.paid_twice_beyond_kills

    def table(self) -> str:
        per_burst = self.llm_requests / self.bursts_sent if self.bursts_sent else 0.0
        done = self.llm_completions / self.bursts_sent if self.bursts_sent else 0.0
        rows = [
            ("messages accepted by Telegram", self.accepted),
            ("bursts answered", self.bursts_sent),
            ("lost", len(self.lost)),
            ("duplicated", len(self.duplicated)),
            ("in doubt", len(self.in_doubt)),
            ("unexpected", len(self.unexpected)),
            ("out of order", len(self.out_of_order)),
            (
                "extra LLM answers for a burst (allowed: calls killed or timed out mid-way)",
                f"{len(self.paid_twice)} ({self.paid_twice_allowed})",
            ),
            ("failed workflow tasks", len(self.failed_tasks)),
            ("stuck workflows (retry running, activity pending)", len(self.stuck)),
            ("bursts failed by a fault beyond the outage window, retried by ops", self.retried),
            ("error notices users saw for those", self.notices),
            ("messages whose rows vanished, reported LOST (or answered)", self.vanished_reported),
            (
                "retried bursts left to ops as SendInDoubt (users' view checked)",
                self.sends_in_doubt,
            ),
            ("bursts superseded (author wrote mid-reply)", self.superseded),
            ("replies generated then discarded by a supersede", self.discarded_answers),
            ("stale replies sent (of superseded bursts)", len(self.stale_sent)),
            ("handoffs (the user account's owner wrote from their phone)", self.handoffs),
            ("messages recorded unanswered during a handoff", self.paused_by_handoff),
            ("LLM requests per burst (all attempts)", f"{per_burst:.2f}"),
            ("LLM answers per burst (200s)", f"{done:.2f}"),
        ]
        lines = ["| check | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        for name in (
            "lost",
            "duplicated",
            "in_doubt",
            "unexpected",
            "out_of_order",
            "paid_twice",
            "failed_tasks",
            "stuck",
            "stale_sent",
        ):
            found = getattr(self, name)
            if found:
                kinds = Counter(line.rsplit(": ", 1)[-1][:40] for line in found)
                lines.append(f"\n{name} ({dict(kinds.most_common(6))}): {found[:20]}")
        if self.diagnosis:
            lines += ["", "unfinished conversations, as Temporal sees them:", *self.diagnosis]
        return "\n".join(lines)


async def check(
    cluster: Cluster,
    accepted: Accepted,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    paid_twice_allowed: int = 0,
    temporal: Client | None = None,
    retried: frozenset[str] = frozenset(),
) -> Report:
    """``retried``: bursts an operator retried after a fault failed them on purpose; their
    replies come late (out of their chat's order) and their chats may show an error notice."""
    report = Report(
        accepted=accepted.count, paid_twice_allowed=paid_twice_allowed, retried=len(retried)
    )
    report.llm_requests = len(cluster.llm.requests)
    report.llm_completions = cluster.llm.statuses.count(200)
    paid = Counter(cluster.llm.paid_for)
    report.paid_twice = [
        f"{burst[:60]!r}: {n} answers" for burst, n in paid.items() for _ in range(n - 1)
    ]
    report.paid_twice_allowed += _paid_twice_for_a_reason(
        cluster.llm.answers, getattr(cluster, "kills", [])
    )
    if temporal is not None:
        await _check_temporal(temporal, report)
    keys = [cluster.account_key, *([cluster.owner_key] if hasattr(cluster, "owner_key") else [])]
    recorded = await _recorded(sessionmaker, keys)
    report.handoffs = sum(len(times) for times in accepted.handoffs.values())
    unfinished = _unfinished_conversations(recorded)
    bursts_of_message: Counter[tuple[int, int]] = Counter()
    owners = {r.burst_key for r in recorded["messages"]}
    report.discarded_answers = recorded["discarded"]
    # A superseded burst's reply was generated (paid) and discarded: the burst that took
    # it over pays its own call, maybe for the same text (a message deleted meanwhile).
    report.paid_twice_allowed += report.discarded_answers
    report.stale_sent = [f"burst {key}: stale reply sent" for key in recorded["stale"]]
    for row in recorded["bursts"]:
        if row.status == "superseded":
            # Its messages moved to the burst that took it over.
            report.superseded += 1
            continue
        if row.status == "dropped" and row.error_type == "superseded":
            # Flushed by a workflow task that then timed out; its messages moved to the
            # burst the retried task flushed, so it holds none of them any more.
            continue
        if row.status == "dropped" and row.error_type == "missing":
            # Flushed when its messages' rows had vanished (reported LOST): it held none.
            # A message the listener recorded again is answered by a later burst.
            continue
        bursts_of_message.update((row.chat_id, mid) for mid in row.message_ids)
        if row.status == "failed" and row.error_type == "SendInDoubt" and row.burst_key in retried:
            # Its send's answer was lost long ago; the checker sees whether users got it.
            report.sends_in_doubt += 1
        elif row.status == "failed":
            report.unexpected.append(f"burst {row.burst_key} failed: {row.error_type}")
        elif row.status in ("persisted", "replied") and row.burst_key not in owners:
            # Unfinished and owning no message: the per-message check below cannot see it.
            report.in_doubt.append(f"burst {row.burst_key} still {row.status}, owns nothing")
    report.bursts_sent = sum(1 for row in recorded["bursts"] if row.status == "sent")
    by_word = {(r.chat_id, _word_of(r.text, accepted)): r for r in recorded["messages"]}
    _check_recorded(accepted, by_word, report)
    vanished = {
        (chat, _word_of(text, accepted)): message_id
        for (chat, text), message_id in getattr(cluster, "vanished", {}).items()
    }
    reported_lost = _reported_lost_ids(getattr(cluster, "processes", []))
    # Answered late by design: bursts ops retried, and messages whose signal was lost and
    # that the listener's sweep signalled again (the workflow logs each).
    swept = _logged_ids(getattr(cluster, "processes", []), SWEPT_MARK, "message ", " was")
    orphaned = {(chat, _word_of(t, accepted)) for chat, t in getattr(cluster, "orphaned", ())}
    late = {
        (chat, word)
        for (chat, word), row in by_word.items()
        if row.burst_key in retried or row.message_id in swept or (chat, word) in orphaned
    }
    # Chats where ops retried a burst may show its error notice; a command's burst too,
    # though commands share a word ("/help") and so are not all in ``by_word``.
    noticed = {r.chat_id for r in recorded["messages"] if r.burst_key in retried}
    noticed |= {chat for chat, _ in late}
    # A command whose row vanished and was reported LOST is not owed its answer either.
    excused: dict[int, Counter[str]] = {}
    for (chat, text), message_id in getattr(cluster, "vanished", {}).items():
        if text.startswith("/") and message_id in reported_lost:
            excused.setdefault(chat, Counter())[text[1:]] += 1
            report.vanished_reported += 1
    for chat, words in accepted.texts.items():
        answered = _check_replies(
            cluster, accepted, chat, words, report, late, noticed, excused.get(chat, Counter())
        )
        for word in words:
            row = by_word.get((chat, word))
            held = bursts_of_message[(chat, row.message_id)] if row is not None else 0
            if answered[word] > 1 or held > 1:
                report.duplicated.append(f"{word}: {answered[word]} replies, {held} bursts")
            elif answered[word] == 1:
                continue
            elif row is not None and row.error_type == "SendInDoubt" and row.burst_key in retried:
                report.unsent_in_doubt += 1  # failed loudly, `lull retry --resend-in-doubt`
            elif row is not None and row.status in ("persisted", "replied"):
                report.in_doubt.append(f"{word}: burst still {row.status}")
            elif row is not None and row.error_type == "paused":
                if _during_handoff(accepted.handoffs.get(chat, []), row.received_at):
                    report.paused_by_handoff += 1
                else:
                    report.lost.append(f"{word}: paused with no handoff near it")
            elif word in accepted.deleted:
                continue  # deleted before its flush: rightly never answered
            elif row is None and (chat, word) in vanished:
                if vanished[(chat, word)] in reported_lost:
                    report.vanished_reported += 1
                else:
                    report.lost.append(f"{word}: its row vanished and nobody said so")
            else:
                status = "not recorded" if row is None else (row.status or "in no burst")
                report.lost.append(f"{word}: {status}")
    if temporal is not None and (report.lost or report.in_doubt):
        logs = [p.log_path for p in getattr(cluster, "processes", [])]
        report.diagnosis = await _diagnose(temporal, cluster.account_key, unfinished, logs)
    return report


# An answer counts as lost with its process when the process was SIGKILLed this close to
# it: still waiting for it (the fake answers a dead socket), or holding it unstored. A
# second answer proves the first was never stored (a stored reply is never generated
# again), so the window after it only has to outlast a store that waits out a Postgres
# outage or a loaded host: the kill must still hit the very process that got it.
KILLED_BEFORE_ANSWER_SECONDS = 5.0
KILLED_AFTER_ANSWER_SECONDS = 30.0


def _paid_twice_for_a_reason(
    answers: Sequence[tuple[str, int | None, float, bool]], kills: Sequence[tuple[int, float]]
) -> int:
    """How many second answers for a burst the README allows: the earlier answer went to a
    worker SIGKILLed around then (it never stored it), or came after the client's timeout
    had given up on it. Matched per process, so a kill explains only its own calls."""
    earlier: dict[str, list[tuple[int | None, float, bool]]] = {}
    allowed = 0
    for burst_text, pid, at, late in answers:
        before = earlier.setdefault(burst_text, [])
        if before:
            first_pid, first_at, first_late = before[-1]
            killed = any(
                pid_killed == first_pid
                and first_at - KILLED_BEFORE_ANSWER_SECONDS
                <= killed_at
                <= first_at + KILLED_AFTER_ANSWER_SECONDS
                for pid_killed, killed_at in kills
            )
            allowed += int(first_late or (first_pid is not None and killed))
        before.append((pid, at, late))
    return allowed


def _reported_lost_ids(processes: Sequence[Any]) -> set[int]:
    """Message ids the workers' LOST MESSAGES lines name (activities/bursts.py)."""
    return _logged_ids(processes, "LOST MESSAGES", "(ids [", "]")


def _logged_ids(processes: Sequence[Any], mark: str, before: str, after: str) -> set[int]:
    """The ids written between ``before`` and ``after`` in the log lines holding ``mark``."""
    ids: set[int] = set()
    for proc in processes:
        for line in _log_lines_naming([proc.log_path], mark):
            listed = line.split(before, 1)[-1].split(after, 1)[0]
            ids.update(int(i) for i in listed.split(",") if i.strip().isdigit())
    return ids


def _word_of(text: str, accepted: Accepted) -> str:
    """The word a message stands for: its last (a group message starts with the mention),
    an edited one mapped back to the word it was sent as."""
    words = text.split()
    last = words[-1] if words else ""
    return accepted.edited.get(last, last)


def _check_recorded(
    accepted: Accepted, by_word: dict[tuple[int, str], Any], report: Report
) -> None:
    """Every group message not naming the bot is recorded as such; nothing recorded that
    nobody sent."""
    owed = {(chat, w) for chat, words in accepted.texts.items() for w in words}
    chatter = {(GROUP_CHAT, w) for w in accepted.chatter}
    commands = {(user, f"/{name}") for user, sent in accepted.commands.items() for name in sent}
    for (chat, word), row in by_word.items():
        if (chat, word) in chatter and row.unanswered_reason is None:
            report.unexpected.append(f"group chatter {word} recorded as to be answered")
        elif (chat, word) not in owed | chatter | commands:
            report.unexpected.append(f"recorded message nobody sent: chat {chat} {row.text!r}")
    for word in accepted.chatter:
        if (GROUP_CHAT, word) not in by_word:
            report.lost.append(f"{word}: group chatter not recorded")


def _check_replies(
    cluster: Cluster,
    accepted: Accepted,
    chat: int,
    words: list[str],
    report: Report,
    late: set[tuple[int, str]],
    noticed: set[int],
    excused: Counter[str],
) -> Counter[str]:
    """What the chat's replies answered, word by word; checks their order, that they
    answer nothing never sent (nor chatter), and that each command got one answer."""
    world = cluster.telegram.world
    topic = topic_of_key(chat)
    me = OWNER if chat in accepted.owner_chats else BOT
    if topic is not None:
        shown = world.forum_messages(FORUM, topic)
    else:
        shown = world.visible_to(me, IN_GROUP if chat == GROUP_CHAT else types.PeerUser(chat))
    answered: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    order = {word: i for i, word in enumerate(words)}
    last_seen = -1
    for seen in shown:
        if seen.sender_id != me or (me == OWNER and seen.text == OWNER_NOTE):
            continue
        if seen.text == REFRESH_REPLY or HELP_MARK in seen.text:
            commands["refresh" if seen.text == REFRESH_REPLY else "help"] += 1
            continue
        if seen.text == ERROR_NOTICE:
            if chat in noticed:
                report.notices += 1
            else:
                report.unexpected.append(f"chat {chat} saw {NOTICE_SEEN}")
            continue
        tokens = seen.text.split()
        if not tokens or tokens[0] != REPLY_PREFIX:
            report.unexpected.append(f"chat {chat} saw {seen.text[:60]!r}")
            continue
        said = [accepted.edited.get(t, t) for t in tokens[1:] if not t.startswith("@")]
        answered.update(said)
        positions = [order[w] for w in said if w in order and (chat, w) not in late]
        if positions and (positions != sorted(positions) or positions[0] <= last_seen):
            report.out_of_order.append(f"chat {chat}: {seen.text[:60]!r}")
        last_seen = max([last_seen, *positions])
    for word in set(answered) - set(words):
        report.unexpected.append(f"chat {chat} saw an answer to {word!r}, never owed one")
    sent = accepted.commands.get(chat, Counter())
    for name in set(sent) | set(commands):
        if commands[name] > sent[name]:
            report.duplicated.append(f"chat {chat}: /{name} answered {commands[name]}×")
        elif commands[name] < sent[name] - excused[name]:
            report.lost.append(f"chat {chat}: /{name} answered {commands[name]} of {sent[name]}")
    return answered


def _unfinished_conversations(recorded: dict[str, list]) -> dict[str | None, list[str]]:  # type: ignore[type-arg]
    """chat_ref → what is unfinished there: bursts persisted or replied, messages in no
    burst (the tail a stuck conversation never flushed)."""
    found: dict[str | None, list[str]] = {}
    for row in recorded["bursts"]:
        if row.status in ("persisted", "replied"):
            found.setdefault(row.chat_ref, []).append(f"burst {row.burst_key} {row.status}")
    for row in recorded["messages"]:
        if row.burst_key is None and row.deleted_at is None and row.unanswered_reason is None:
            found.setdefault(row.chat_ref, []).append(f"message {row.message_id} in no burst")
    return found


async def _diagnose(
    temporal: Client,
    account_key: str,
    unfinished: dict[str | None, list[str]],
    logs: list[Path],
    *,
    limit: int = 6,
) -> list[str]:
    """Each unfinished conversation's run: its status, pending activities (attempt, last
    failure, next try), last history events and the processes' last log lines naming it,
    so a stuck run names what it waits on."""
    from temporalio.api.enums.v1 import EventType

    lines = []
    for chat_ref, what in list(unfinished.items())[:limit]:
        if chat_ref is None:
            lines.append(f"- a conversation with no chat_ref: {what[:2]}")
            continue
        wf_id = conversation_workflow_id(account_key, chat_ref)
        lines.append(f"- {wf_id}: {len(what)} unfinished, first {what[:2]}")
        handle = temporal.get_workflow_handle(wf_id)
        try:
            described = await handle.describe()
        except Exception as exc:  # noqa: BLE001 - a post-mortem says what it could not read
            lines.append(f"    describe failed: {type(exc).__name__}: {exc}")
            continue
        lines.append(f"    status {described.status.name if described.status else '?'}")
        for act in described.raw_description.pending_activities:
            failure = act.last_failure.message[:160] if act.HasField("last_failure") else ""
            next_try = (
                act.next_attempt_schedule_time.ToDatetime().isoformat(timespec="seconds")
                if act.HasField("next_attempt_schedule_time")
                else "-"
            )
            lines.append(
                f"    pending {act.activity_type.name} attempt {act.attempt} "
                f"state {act.state} next {next_try} last failure {failure!r}"
            )
        events = [e async for e in handle.fetch_history_events()]
        tail = [
            f"{e.event_time.ToDatetime().time().isoformat(timespec='seconds')} "
            f"{EventType.Name(e.event_type).removeprefix('EVENT_TYPE_')}"
            for e in events[-8:]
        ]
        lines.append(f"    last events: {tail}")
        lines += [f"    log: {line[:240]}" for line in _log_lines_naming(logs, chat_ref)[-4:]]
    return lines


def _log_lines_naming(logs: list[Path], needle: str) -> list[str]:
    found = []
    for path in logs:
        with contextlib.suppress(OSError):
            found += [
                f"{path.stem}: {line.rstrip()}"
                for line in path.read_text(errors="replace").splitlines()
                if needle in line
            ]
    return found


async def _check_temporal(client: Client, report: Report) -> None:
    """What the server says: no failed workflow task in any run, no retry workflow left
    running, no open conversation waiting on an activity."""
    from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause

    # The server refusing a completion because a signal landed meanwhile is how a run's
    # idle close stays safe (workflows/conversation.py): the task runs again with it.
    expected = {WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND}

    FORCE_CLOSE = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
    async for wf in client.list_workflows("WorkflowType = 'ConversationWorkflow'"):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        terminated = wf.status is not None and wf.status.name == "TERMINATED"
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed = event.workflow_task_failed_event_attributes
                if failed.cause in expected:
                    continue
                if failed.cause == FORCE_CLOSE and terminated:
                    # The fault that loses a run terminates it: a task in flight then
                    # fails with FORCE_CLOSE_COMMAND, the server's doing, not the code's.
                    continue
                cause = WorkflowTaskFailedCause.Name(failed.cause)
                report.failed_tasks.append(f"{wf.id}: {cause} {failed.failure.message[:120]}")
        if wf.status is not None and wf.status.name == "RUNNING":
            described = await handle.describe()
            if described.raw_description.pending_activities:
                report.stuck.append(f"{wf.id}: activity pending")
    running_retries = "WorkflowType = 'RetryBurstWorkflow' AND ExecutionStatus = 'Running'"
    async for wf in client.list_workflows(running_retries):
        report.stuck.append(f"{wf.id}: retry still running")


def _chat_key(chat_id: Any) -> Any:
    """The chat's key in ``Accepted`` (load.chat_key): a forum topic is a chat of its own."""
    topic = conversation.c.topic_id
    return case((topic.is_(None), chat_id), else_=literal(TOPIC_KEY_BASE) - topic).label("chat_id")


# A message recorded this long before its chat's handoff may still be flushed after it
# (quiet period, typing, a backlog); one this long after the handoff's end may be flushed
# while the pause is still on (the workflow resumes at its next wake-up).
HANDOFF_BEFORE_SLACK = timedelta(seconds=30)
HANDOFF_AFTER_SLACK = timedelta(seconds=30)


def _during_handoff(handoffs: Sequence[datetime], received_at: datetime) -> bool:
    """Whether a message recorded at ``received_at`` may rightly have come in while its
    chat was handed over: near one of the owner's messages, within the handoff's length."""
    length = timedelta(minutes=HANDOFF_MINUTES)
    return any(
        at - HANDOFF_BEFORE_SLACK <= received_at <= at + length + HANDOFF_AFTER_SLACK
        for at in handoffs
    )


async def _recorded(
    sessionmaker: async_sessionmaker[AsyncSession], keys: Sequence[str]
) -> dict[str, Any]:
    async with sessionmaker() as session:
        messages = await session.execute(
            select(
                _chat_key(message.c.chat_id),
                message.c.text,
                message.c.message_id,
                message.c.unanswered_reason,
                message.c.deleted_at,
                message.c.received_at,
                burst.c.status,
                burst.c.burst_key,
                burst.c.error_type,
                conversation.c.chat_ref,
            )
            .join(account, account.c.id == message.c.account_id)
            .join(conversation, conversation.c.id == message.c.conversation_id)
            .outerjoin(burst, burst.c.id == message.c.burst_id)
            .where(account.c.key.in_(keys))
        )
        bursts = await session.execute(
            select(
                burst.c.burst_key,
                burst.c.message_ids,
                burst.c.status,
                burst.c.error_type,
                _chat_key(conversation.c.chat_id),
                conversation.c.chat_ref,
            )
            .join(conversation, conversation.c.id == burst.c.conversation_id)
            .join(account, account.c.id == conversation.c.account_id)
            .where(account.c.key.in_(keys))
        )
        mine = (
            select(burst.c.id)
            .join(conversation, conversation.c.id == burst.c.conversation_id)
            .join(account, account.c.id == conversation.c.account_id)
            .where(account.c.key.in_(keys), burst.c.status == "superseded")
        )
        stale = await session.execute(
            select(burst.c.burst_key)
            .join(reply, reply.c.burst_id == burst.c.id)
            .join(delivery, delivery.c.reply_id == reply.c.id)
            .where(burst.c.id.in_(mine))
            .distinct()
        )
        discarded = await session.execute(
            select(func.count()).where(reply.c.burst_id.in_(mine), ~reply.c.cancelled)
        )
        return {
            "messages": list(messages),
            "bursts": list(bursts),
            "stale": list(stale.scalars()),
            "discarded": int(discarded.scalar_one()),
        }
