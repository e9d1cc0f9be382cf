"""The users: each writes bursts of 1-12 messages with typing and realistic gaps, through
the MTProto server, as Telegram apps do. Every message Telegram accepted is recorded.

Most users write to the bot privately; every fifth writes in a group instead, naming the
bot (answered), every fifth from the third on in one of a forum's two topics (each topic
is a conversation of its own), and every fifth from the second on also chats in the group
without naming it (recorded, never answered). Every tenth from the fifth on writes to a
user account instead of the bot; its owner now and then writes in one of those chats from
their phone, which hands the chat over for a while (recorded, not answered). Now and then
a user edits or deletes a message just sent, sends an album, or a command (/help,
/refresh) answered by Lull without the LLM.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from telethon.tl import types

from tests.chaos.cluster import BOT, FORUM, GROUP, OWNER, TOPICS, Cluster

TO_BOT = types.PeerUser(BOT)
IN_GROUP = types.PeerChat(GROUP)
IN_FORUM = types.PeerChannel(FORUM)
# The chat id Lull records for the group, and the key of its messages in ``Accepted``.
GROUP_CHAT = -GROUP
# The chat id Lull records for the forum (Telethon's -100 prefix); each topic is a
# conversation, keyed in ``Accepted`` by ``chat_key``.
FORUM_CHAT = -1_000_000_000_000 - FORUM
TOPIC_KEY_BASE = -2_000_000_000_000


def chat_key(chat_id: int, topic_id: int | None) -> int:
    """The key of a chat's (or a forum topic's) messages in ``Accepted``."""
    return chat_id if topic_id is None else TOPIC_KEY_BASE - topic_id


def chat_key_sql(chat: str, topic: str) -> str:
    """``chat_key`` in SQL, over a chat id and a topic id column."""
    return f"case when {topic} is null then {chat} else {TOPIC_KEY_BASE} - {topic} end"


def topic_of_key(key: int) -> int | None:
    """The forum topic a key stands for, or None for a private chat or the group."""
    topic = TOPIC_KEY_BASE - key
    return topic if topic in TOPICS else None


MENTION = "@lullbot"
TYPING = types.SendMessageTypingAction()
EDITED_SUFFIX = "e"
# Per message sent: how often a user does each of the rarer things.
EDIT, DELETE, ALBUM, COMMAND, CHATTER = 0.05, 0.03, 0.03, 0.03, 0.3
# What the user account's owner writes from their phone (a handoff), and how often.
OWNER_NOTE = "owner here"
OWNER_EVERY_SECONDS = (15.0, 40.0)


@dataclass
class Accepted:
    """What Telegram accepted, per chat (a user's id for the private chat, GROUP_CHAT for the
    group), in the order Telegram took it: the messages Lull owes a reply."""

    texts: dict[int, list[str]] = field(default_factory=dict)
    # Group messages that do not name the bot: recorded, never answered.
    chatter: list[str] = field(default_factory=list)
    # An edited message's new word → its first word: a reply may carry either, once.
    edited: dict[str, str] = field(default_factory=dict)
    # Deleted just after sending: answered at most once (the flush may have taken it).
    deleted: set[str] = field(default_factory=set)
    # Per user: the built-in commands sent, each owed one answer of its own.
    commands: dict[int, Counter[str]] = field(default_factory=dict)
    # Chats with the user account (not the bot), and when its owner wrote in each.
    owner_chats: set[int] = field(default_factory=set)
    handoffs: dict[int, list[datetime]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        commands = sum(sum(c.values()) for c in self.commands.values())
        return sum(len(t) for t in self.texts.values()) + len(self.chatter) + commands


async def run_users(
    cluster: Cluster,
    accepted: Accepted,
    *,
    seconds: float,
    rng: random.Random,
    lull: tuple[float, float] = (0.5, 4.0),
    until_also: asyncio.Event | None = None,
) -> None:
    """For ``seconds``, and after that until ``until_also`` is set (the faults are done).
    ``lull``: the pause after a burst, beyond the quiet period. Short pauses make the
    dense load of the CI run; the long run uses longer ones, a rate this 2-core machine
    sustains (with every part and the 50 simulated apps on it) so that a backlog means a
    fault did harm, not that the machine was simply overloaded for 20 minutes."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds

    def writing() -> bool:
        return loop.time() < until or (until_also is not None and not until_also.is_set())

    seeds = [rng.random() for _ in cluster.users]
    owner = random.Random(rng.random())
    await asyncio.gather(
        *(
            _user(cluster, accepted, index, user, writing, random.Random(seed), lull)
            for index, (user, seed) in enumerate(zip(cluster.users, seeds, strict=True))
        ),
        _owner(cluster, accepted, writing, owner),
    )


async def _owner(
    cluster: Cluster, accepted: Accepted, writing: Callable[[], bool], rng: random.Random
) -> None:
    """The user account's owner, on their phone: now and then writes in one of the
    account's chats, which hands that chat over for LULL_HANDOFF_MINUTES."""
    chats = sorted(u for i, u in enumerate(cluster.users) if _writes_to_owner(i))
    while writing():
        await asyncio.sleep(rng.uniform(*OWNER_EVERY_SECONDS))
        if not chats or not writing():
            return
        chat = rng.choice(chats)
        accepted.handoffs.setdefault(chat, []).append(datetime.now(UTC))
        cluster.telegram.world.send(OWNER, types.PeerUser(chat), OWNER_NOTE)


def _writes_to_owner(index: int) -> bool:
    return index % 10 == 4


async def _user(
    cluster: Cluster,
    accepted: Accepted,
    index: int,
    user: int,
    writing: Callable[[], bool],
    rng: random.Random,
    lull: tuple[float, float],
) -> None:
    in_group = index % 5 == 0
    chats_too = index % 5 == 1
    topic = TOPICS[(index // 5) % len(TOPICS)] if index % 5 == 2 else None
    to_owner = _writes_to_owner(index)
    me = User(cluster, accepted, user, rng, in_group=in_group, topic=topic, to_owner=to_owner)
    await asyncio.sleep(rng.uniform(0, 3))  # users do not start in step
    while writing():
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.3:
                cluster.telegram.world.typing(user, me.peer, TYPING, topic=topic)
                await asyncio.sleep(rng.uniform(0.1, 0.8))
            roll = rng.random()
            if not in_group and topic is None and not to_owner and roll < COMMAND:
                me.command("refresh" if rng.random() < 0.25 else "help")
            elif roll < COMMAND + ALBUM:
                me.album()
            else:
                await me.message()
            if chats_too and rng.random() < CHATTER:
                me.chatter()
            await asyncio.sleep(rng.uniform(0.1, 1.5))
        # The lull: longer than the quiet period, so the burst is answered.
        await asyncio.sleep(cluster.debounce + rng.uniform(*lull))


class User:
    """One simulated app: what it sends, and what Telegram accepted of it."""

    def __init__(
        self,
        cluster: Cluster,
        accepted: Accepted,
        user: int,
        rng: random.Random,
        *,
        in_group: bool,
        topic: int | None = None,
        to_owner: bool = False,
    ) -> None:
        self.world = cluster.telegram.world
        self.accepted = accepted
        self.user = user
        self.rng = rng
        self.topic = topic
        self.private = not in_group and topic is None
        self.peer: types.TypePeer = (
            IN_FORUM
            if topic is not None
            else IN_GROUP
            if in_group
            else types.PeerUser(OWNER)
            if to_owner
            else TO_BOT
        )
        if to_owner:
            accepted.owner_chats.add(user)
        key = chat_key(FORUM_CHAT, topic) if topic is not None else GROUP_CHAT if in_group else user
        self.owed = accepted.texts.setdefault(key, [])
        self.sent = 0

    def _word(self) -> str:
        self.sent += 1
        return f"u{self.user}m{self.sent - 1}"

    def _text(self, word: str) -> str:
        return word if self.private else f"{MENTION} {word}"

    async def message(self) -> None:
        word = self._word()
        message_id = self.world.send(self.user, self.peer, self._text(word), topic=self.topic)
        self.owed.append(word)
        roll = self.rng.random()
        if roll < EDIT + DELETE:
            await asyncio.sleep(self.rng.uniform(0.05, 0.5))
            if roll < EDIT:
                edited = word + EDITED_SUFFIX
                self.world.edit(self.user, self.peer, message_id, self._text(edited))
                self.accepted.edited[edited] = word
            else:
                self.world.delete(self.user, [message_id], peer=self.peer)
                self.accepted.deleted.add(word)

    def album(self) -> None:
        """Two photos sent together, the first captioned: one message to Lull."""
        word = self._word()
        album = self.rng.getrandbits(62)
        first = self._text(word)
        self.world.send(self.user, self.peer, first, photo=True, grouped_id=album, topic=self.topic)
        self.world.send(self.user, self.peer, "", photo=True, grouped_id=album, topic=self.topic)
        self.owed.append(word)

    def command(self, name: str) -> None:
        self.world.send(self.user, self.peer, f"/{name}")
        self.accepted.commands.setdefault(self.user, Counter())[name] += 1

    def chatter(self) -> None:
        """A group message that does not name the bot."""
        word = self._word()
        self.world.send(self.user, IN_GROUP, word)
        self.accepted.chatter.append(word)
