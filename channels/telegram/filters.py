"""Which incoming Telegram messages Lull answers. Pure: lookups are done by the caller.

- Private chats: every incoming message from a user who is not a bot.
- Groups, supergroups and forum topics: messages that mention the account, reply to one of
  its messages, or start with a command.
- Never the account's own outgoing messages; allow- and deny-lists of users and chats apply
  first (deny wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    ANSWER = "answer"
    RECORD_ONLY = "record_only"  # kept in the transcript, never answered
    IGNORE = "ignore"  # not ours to keep (our own messages, denied chats)


@dataclass(frozen=True)
class AccessLists:
    allow_users: frozenset[int] = field(default_factory=frozenset)
    deny_users: frozenset[int] = field(default_factory=frozenset)
    allow_chats: frozenset[int] = field(default_factory=frozenset)
    deny_chats: frozenset[int] = field(default_factory=frozenset)

    def permits(self, chat_id: int, user_id: int) -> bool:
        if chat_id in self.deny_chats or user_id in self.deny_users:
            return False
        if self.allow_chats and chat_id not in self.allow_chats:
            return False
        return not (self.allow_users and user_id not in self.allow_users)


@dataclass(frozen=True)
class MessageFacts:
    """What the listener knows about one incoming message."""

    chat_id: int
    sender_id: int
    is_private: bool
    outgoing: bool
    sender_is_bot: bool
    mentions_us: bool
    replies_to_us: bool
    is_command: bool


def verdict(facts: MessageFacts, access: AccessLists) -> Verdict:
    if facts.outgoing:
        return Verdict.IGNORE
    if not access.permits(facts.chat_id, facts.sender_id):
        return Verdict.IGNORE
    if facts.sender_is_bot:
        return Verdict.RECORD_ONLY
    if facts.is_private:
        return Verdict.ANSWER
    if facts.mentions_us or facts.replies_to_us or facts.is_command:
        return Verdict.ANSWER
    return Verdict.RECORD_ONLY
