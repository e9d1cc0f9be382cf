"""Deterministic identifiers: workflow ids per conversation and burst keys per flush.

Both are pure functions of their inputs, never of a run id, so continue-as-new, replays
and retries land on the same conversation and the same burst.

No Telegram chat or user id crosses Temporal: a conversation is named by a keyed hash of
its chat (``chat_reference``) and a sender by a keyed number (``sender_reference``), so
workflow ids, inputs, signals, search attributes and summaries hold neither. Postgres
keeps the mapping (``conversation.chat_ref``); the ops CLI computes it from a chat id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import quote

WORKFLOW_ID_PREFIX = "conversation"


def _encode_part(part: str | int | None) -> str:
    # Percent-encoding escapes "/" (our separator) and "%" itself, so it is injective;
    # "~" is escaped too so that the bare "~" can stand for a missing part.
    if part is None:
        return "~"
    # surrogatepass: any Python string encodes (even a lone surrogate), still injectively.
    return quote(str(part), safe="", errors="surrogatepass").replace("~", "%7E")


def chat_reference(key: bytes, account_key: str, chat_id: int, topic_id: int | None) -> str:
    """A keyed hash of (account, chat, topic): what stands for the chat in Temporal."""
    material = f"{account_key}\x00{chat_id}\x00{topic_id}".encode()
    return hmac.new(key, material, hashlib.sha256).hexdigest()[:16]


def sender_reference(key: bytes, account_key: str, sender_id: int) -> int:
    """A keyed 63-bit number standing for a Telegram user in signals: equal for the same
    user, so the typing lease still finds its author, and never the user's id."""
    material = f"sender\x00{account_key}\x00{sender_id}".encode()
    return int.from_bytes(hmac.new(key, material, hashlib.sha256).digest()[:8], "big") >> 1


def conversation_workflow_id(account_key: str, chat_ref: str) -> str:
    """The one workflow id of a conversation: its account and the chat's keyed hash."""
    return "/".join((WORKFLOW_ID_PREFIX, _encode_part(account_key), "c-" + chat_ref))


def legacy_conversation_workflow_id(
    account: str | int, chat: str | int, topic: str | int | None = None
) -> str:
    """The workflow id of runs started before keyed ids (it held the raw chat id): ops
    commands still find such a run while it finishes after an upgrade."""
    parts = (_encode_part(account), _encode_part(chat), _encode_part(topic))
    return "/".join((WORKFLOW_ID_PREFIX, *parts))


def burst_key(workflow_id: str, message_ids: Sequence[int], *, after: str | None = None) -> str:
    """Key of the burst holding exactly these messages of this conversation. ``after``: the
    superseded burst it takes over. Its messages may be the very same (the message that
    superseded it was deleted), and it must still get a key, and random_ids, of its own."""
    material = f"{workflow_id}|{','.join(str(i) for i in sorted(message_ids))}"
    if after is not None:
        material += f"|after {after}"
    return "b-" + hashlib.sha256(material.encode()).hexdigest()[:32]


def delivery_random_id(key: str, chunk_index: int) -> int:
    """Telegram's ``random_id`` for one chunk of a burst's reply: a signed 64-bit int."""
    digest = hashlib.sha256(f"{key}|{chunk_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
