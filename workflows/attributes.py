"""Custom search attributes, so ops can filter conversations in the Temporal UI.

No PII: the chat is a keyed hash, never an id, a name or a phone number.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ACCOUNT = SearchAttributeKey.for_keyword("LullAccount")
CHAT_REF = SearchAttributeKey.for_keyword("LullChatRef")
PHASE = SearchAttributeKey.for_keyword("LullPhase")
ALL = (ACCOUNT, CHAT_REF, PHASE)

# LullPhase since the lull-2026-12 patch: only what changes rarely and is worth a filter.
# A phase that moved with every burst cost three visibility writes a burst, which on the
# dev server tripled the flush overhead at 100 conversations; the moment-to-moment phase
# is in the `state` query, `lull inspect` and the UI's current details.
ACTIVE = "active"
PAUSED = "paused"


def steady_phase(phase: str) -> str:
    """The LullPhase value of a conversation phase: paused (human handoff) or active."""
    return PAUSED if phase == PAUSED else ACTIVE


# LullPhase of runs from before that patch, which replay must repeat: the
# finer phases (persisting, generating, sending) were "answering".
COARSE_PHASE = {
    "idle": "idle",
    "collecting": "collecting",
    "persisting": "answering",
    "generating": "answering",
    "sending": "answering",
    "paused": "paused",
}
