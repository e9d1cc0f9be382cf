"""What the ingest seam accepts, whatever a channel hands it.

Telegram cannot send most of what is refused here, but a listener must never stall on
what it can't store: an id Postgres cannot hold or a text it refuses would otherwise be
retried forever and block its chat's later messages. So such input is refused at the door
with a clear reason (the caller logs it), or repaired where nothing is lost that matters.
"""

from __future__ import annotations

import logging
import unicodedata

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Telegram allows 4096 characters a message (captions fewer); anything beyond this did not
# come from a Telegram app. Kept, cut to this length, with a log line saying so.
MAX_MESSAGE_CHARS = 16_384

log = logging.getLogger("lull.ingest")


class RejectedMessageError(ValueError):
    """An incoming message that cannot be buffered (e.g. empty); the text says why."""


def check_ids(what: str, **ids: int | None) -> None:
    """Every id must be a 64-bit integer (Postgres BIGINT); message ids are positive."""
    for name, value in ids.items():
        if value is None:
            if name in ("topic_id", "chat_id"):
                continue
            raise RejectedMessageError(f"{what}: {name} is missing")
        if isinstance(value, bool) or not isinstance(value, int):
            raise RejectedMessageError(f"{what}: {name} {value!r} is not an integer")
        if not INT64_MIN <= value <= INT64_MAX:
            raise RejectedMessageError(f"{what}: {name} {value} does not fit 64 bits")
        if name == "message_id" and value < 1:
            raise RejectedMessageError(f"{what}: message_id {value} is not positive")


def valid_message_ids(message_ids: list[int], what: str) -> list[int]:
    """The ids that can be message ids; the others are logged as rejected and left out."""
    valid = []
    for message_id in message_ids:
        try:
            check_ids(what, message_id=message_id)
        except RejectedMessageError as exc:
            log.warning("rejected %s", exc)
        else:
            valid.append(message_id)
    return valid


def clean_text(text: str | None, what: str) -> str:
    """The text as stored: NUL characters removed (Postgres text cannot hold them), lone
    surrogates replaced (not UTF-8), stripped, and cut to ``MAX_MESSAGE_CHARS``; empty when
    nothing visible is left."""
    if text is None:
        return ""
    cleaned = text.replace("\x00", "")
    cleaned = cleaned.encode("utf-8", "replace").decode("utf-8").strip()
    if all(c.isspace() or unicodedata.category(c) == "Cf" for c in cleaned):
        # Only invisible characters (zero-width spaces, direction marks): nothing to answer.
        return ""
    if len(cleaned) > MAX_MESSAGE_CHARS:
        log.warning(
            "%s: %d characters, cut to %d (no Telegram app sends that much)",
            what,
            len(cleaned),
            MAX_MESSAGE_CHARS,
        )
        cleaned = cleaned[:MAX_MESSAGE_CHARS]
    return cleaned
