"""The load every system in the comparison gets: the same seeded schedule of messages.

Conversations start spread over a window; each has 1-2 bursts of 1-12 messages with gaps
of 100 ms up to the scaled 3 s, a typing action just before each message (so a lease
never outlasts the quiet period: the typing window is shorter than the debounce) and a
long lull between bursts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Time scale: the 5 s debounce of the designs we replace, scaled to keep runs short. Gaps
# scale the same way, so the shape of the load is unchanged.
SCALE = 0.4
DEBOUNCE = 5.0 * SCALE
TYPING_WINDOW = 0.75 * DEBOUNCE
MAX_BATCH = 10  # the Redis batcher's and Lull's message cap
GAP = (0.1, 3.0 * SCALE)


@dataclass(frozen=True)
class Event:
    at: float  # seconds after the run starts
    chat_id: int
    message_id: int
    kind: str  # "message" or "typing"


@dataclass(frozen=True)
class Workload:
    events: list[Event]
    messages: int
    # (chat, message id) → when it was due to be answered at the latest, ideally.
    due: dict[tuple[int, int], float]

    @property
    def duration(self) -> float:
        return max(e.at for e in self.events)


def build(conversations: int, *, seed: int, spread: float = 10.0) -> Workload:
    rng = random.Random(seed)
    events: list[Event] = []
    for index in range(conversations):
        chat_id = 1_000 + index
        t = rng.uniform(0, spread)
        message_id = 0
        for _ in range(rng.randint(1, 2)):
            for _ in range(rng.randint(1, 12)):
                message_id += 1
                events.append(Event(max(0.0, t - 0.05), chat_id, message_id, "typing"))
                events.append(Event(t, chat_id, message_id, "message"))
                t += rng.uniform(*GAP)
            t += DEBOUNCE * 2 + 1.0  # the lull between bursts
    events.sort(key=lambda e: e.at)
    messages = [e for e in events if e.kind == "message"]
    return Workload(events, len(messages), ideal_due(messages))


def ideal_due(messages: list[Event]) -> dict[tuple[int, int], float]:
    """When each message's batch should flush under the shared rule: the quiet period
    after the batch's last message, or at once when the batch reaches the cap. Keyed by
    the batch's last message, which is what a flushed batch reports."""
    due: dict[tuple[int, int], float] = {}
    by_chat: dict[int, list[Event]] = {}
    for event in messages:
        by_chat.setdefault(event.chat_id, []).append(event)
    for chat_id, chat_messages in by_chat.items():
        batch: list[Event] = []
        for i, event in enumerate(chat_messages):
            batch.append(event)
            following = chat_messages[i + 1] if i + 1 < len(chat_messages) else None
            if len(batch) == MAX_BATCH:
                due[(chat_id, event.message_id)] = event.at
                batch = []
            elif following is None or following.at - event.at >= DEBOUNCE:
                due[(chat_id, event.message_id)] = event.at + DEBOUNCE
                batch = []
    return due
