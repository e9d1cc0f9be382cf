"""Custom search attributes, so ops can filter conversations in the Temporal UI.

No PII: the chat is a keyed hash, never an id, a name or a phone number.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ACCOUNT = SearchAttributeKey.for_keyword("LullAccount")
CHAT_REF = SearchAttributeKey.for_keyword("LullChatRef")
PHASE = SearchAttributeKey.for_keyword("LullPhase")
ALL = (ACCOUNT, CHAT_REF, PHASE)

# The phases ops filter by; the finer ones (persisting, generating, sending) are "answering".
COARSE_PHASE = {
    "idle": "idle",
    "collecting": "collecting",
    "persisting": "answering",
    "generating": "answering",
    "sending": "answering",
    "paused": "paused",
}
