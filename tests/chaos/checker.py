"""The checker, Jepsen-style: after the faults stop and everything drains, compare what
users sent (Telegram accepted it), what Postgres recorded and what users saw.

- lost: an accepted message that no visible reply answers and no burst is still working on;
- duplicated: a message answered by two visible replies, or held by two bursts (a burst
  superseded by a timed-out workflow task's retry holds nothing);
- in doubt: a message whose burst is still persisted/replied (not finished) at the end, or
  such a burst owning no message;
- unexpected: a visible bot message that answers nothing we sent (e.g. an error notice),
  a failed burst, or a recorded message nobody sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.tables import account, burst, conversation, message
from tests.chaos.cluster import BOT, Cluster
from tests.chaos.load import TO_BOT, Accepted

REPLY_PREFIX = "re:"


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

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.in_doubt or self.unexpected)

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
            ("LLM requests per burst (all attempts)", f"{per_burst:.2f}"),
            ("LLM answers per burst (200s)", f"{done:.2f}"),
        ]
        lines = ["| check | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        for name in ("lost", "duplicated", "in_doubt", "unexpected"):
            found = getattr(self, name)
            if found:
                lines.append(f"\n{name}: {found[:20]}")
        return "\n".join(lines)


async def check(
    cluster: Cluster, accepted: Accepted, sessionmaker: async_sessionmaker[AsyncSession]
) -> Report:
    report = Report(accepted=accepted.count)
    report.llm_requests = len(cluster.llm.requests)
    report.llm_completions = cluster.llm.statuses.count(200)
    recorded = await _recorded(sessionmaker, cluster.account_key)
    bursts_of_message: Counter[tuple[int, int]] = Counter()
    owners = {r.burst_key for r in recorded["messages"]}
    for row in recorded["bursts"]:
        if row.status == "dropped" and row.error_type == "superseded":
            # Flushed by a workflow task that then timed out; its messages moved to the
            # burst the retried task flushed, so it holds none of them any more.
            continue
        bursts_of_message.update((row.chat_id, mid) for mid in row.message_ids)
        if row.status == "failed":
            report.unexpected.append(f"burst {row.burst_key} failed: {row.error_type}")
        elif row.status in ("persisted", "replied") and row.burst_key not in owners:
            # Unfinished and owning no message: the per-message check below cannot see it.
            report.in_doubt.append(f"burst {row.burst_key} still {row.status}, owns nothing")
    report.bursts_sent = sum(1 for row in recorded["bursts"] if row.status == "sent")
    by_text = {(r.chat_id, r.text): r for r in recorded["messages"]}
    sent_texts = {(user, t) for user, texts in accepted.texts.items() for t in texts}
    for chat, text in by_text:
        if (chat, text) not in sent_texts:
            report.unexpected.append(f"recorded message nobody sent: chat {chat} {text!r}")
    for user, texts in accepted.texts.items():
        answered: Counter[str] = Counter()
        for seen in cluster.telegram.world.visible_to(user, TO_BOT):
            if seen.sender_id != BOT:
                continue
            words = seen.text.split()
            if not words or words[0] != REPLY_PREFIX:
                report.unexpected.append(f"user {user} saw {seen.text[:60]!r}")
                continue
            answered.update(words[1:])
        for word in set(answered) - set(texts):
            report.unexpected.append(f"user {user} saw an answer to {word!r}, never sent")
        for text in texts:
            row = by_text.get((user, text))
            held = bursts_of_message[(user, row.message_id)] if row is not None else 0
            if answered[text] > 1 or held > 1:
                report.duplicated.append(f"{text}: {answered[text]} replies, {held} bursts")
            elif answered[text] == 1:
                continue
            elif row is not None and row.status in ("persisted", "replied"):
                report.in_doubt.append(f"{text}: burst still {row.status}")
            else:
                status = "not recorded" if row is None else (row.status or "in no burst")
                report.lost.append(f"{text}: {status}")
    return report


async def _recorded(sessionmaker: async_sessionmaker[AsyncSession], key: str) -> dict[str, list]:  # type: ignore[type-arg]
    async with sessionmaker() as session:
        messages = await session.execute(
            select(
                message.c.chat_id,
                message.c.text,
                message.c.message_id,
                burst.c.status,
                burst.c.burst_key,
            )
            .join(account, account.c.id == message.c.account_id)
            .outerjoin(burst, burst.c.id == message.c.burst_id)
            .where(account.c.key == key)
        )
        bursts = await session.execute(
            select(
                burst.c.burst_key,
                burst.c.message_ids,
                burst.c.status,
                burst.c.error_type,
                conversation.c.chat_id,
            )
            .join(conversation, conversation.c.id == burst.c.conversation_id)
            .join(account, account.c.id == conversation.c.account_id)
            .where(account.c.key == key)
        )
        return {"messages": list(messages), "bursts": list(bursts)}
