"""The users: each writes bursts of 1-12 messages with typing and realistic gaps, through
the MTProto server, as Telegram apps do. Every message Telegram accepted is recorded."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from telethon.tl import types

from tests.chaos.cluster import BOT, Cluster

TO_BOT = types.PeerUser(BOT)
TYPING = types.SendMessageTypingAction()


@dataclass
class Accepted:
    """What Telegram accepted from each user, in order: the messages Lull owes a reply."""

    texts: dict[int, list[str]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(t) for t in self.texts.values())


async def run_users(
    cluster: Cluster,
    accepted: Accepted,
    *,
    seconds: float,
    rng: random.Random,
    lull: tuple[float, float] = (0.5, 4.0),
) -> None:
    """``lull``: the pause after a burst, beyond the quiet period. Short pauses make the
    dense load of the CI run; the long run uses longer ones, a rate this 2-core machine
    sustains (with every part and the 50 simulated apps on it) so that a backlog means a
    fault did harm, not that the machine was simply overloaded for 20 minutes."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    seeds = [rng.random() for _ in cluster.users]
    await asyncio.gather(
        *(
            _user(cluster, accepted, user, until, random.Random(seed), lull)
            for user, seed in zip(cluster.users, seeds, strict=True)
        )
    )


async def _user(
    cluster: Cluster,
    accepted: Accepted,
    user: int,
    until: float,
    rng: random.Random,
    lull: tuple[float, float],
) -> None:
    loop = asyncio.get_running_loop()
    world = cluster.telegram.world
    sent = accepted.texts.setdefault(user, [])
    await asyncio.sleep(rng.uniform(0, 3))  # users do not start in step
    while loop.time() < until:
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.3:
                world.typing(user, TO_BOT, TYPING)
                await asyncio.sleep(rng.uniform(0.1, 0.8))
            text = f"u{user}m{len(sent)}"
            world.send(user, TO_BOT, text)
            sent.append(text)
            await asyncio.sleep(rng.uniform(0.1, 1.5))
        # The lull: longer than the quiet period, so the burst is answered.
        await asyncio.sleep(cluster.debounce + rng.uniform(*lull))
