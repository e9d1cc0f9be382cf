"""Deterministic identifiers: workflow ids per conversation and burst keys per flush.

Both are pure functions of their inputs, never of a run id, so continue-as-new, replays
and retries land on the same conversation and the same burst.
"""

from __future__ import annotations

import hashlib
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


def conversation_workflow_id(
    account: str | int, chat: str | int, topic: str | int | None = None
) -> str:
    """The one workflow id for (account, chat, topic); distinct inputs never collide."""
    parts = (_encode_part(account), _encode_part(chat), _encode_part(topic))
    return "/".join((WORKFLOW_ID_PREFIX, *parts))


def burst_key(workflow_id: str, message_ids: Sequence[int]) -> str:
    """Key of the burst holding exactly these messages of this conversation."""
    material = f"{workflow_id}|{','.join(str(i) for i in sorted(message_ids))}"
    return "b-" + hashlib.sha256(material.encode()).hexdigest()[:32]


def delivery_random_id(key: str, chunk_index: int) -> int:
    """Telegram's ``random_id`` for one chunk of a burst's reply: a signed 64-bit int."""
    digest = hashlib.sha256(f"{key}|{chunk_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
