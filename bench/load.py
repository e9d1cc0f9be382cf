"""The bursty load both history benches drive: one conversation's steps, seeded."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """Send message ``message_id`` (typing after it if ``typing``), then wait ``then``."""

    message_id: int
    typing: bool
    then: float


def bursty_load(
    messages: int, *, seed: int, gap: tuple[float, float], lull: float
) -> Iterator[Step]:
    """Bursts of 1-12 messages ``gap`` seconds apart, typing after 30% of them, and a
    ``lull`` after each burst."""
    rng = random.Random(seed)
    sent = 0
    while sent < messages:
        size = min(rng.randint(1, 12), messages - sent)
        for index in range(size):
            sent += 1
            typing = rng.random() < 0.3
            pause = rng.uniform(*gap) + (lull if index == size - 1 else 0.0)
            yield Step(sent, typing, pause)
