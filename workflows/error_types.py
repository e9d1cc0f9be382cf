"""The error types of the taxonomy: raised by activities (``activities/errors.py``) and
matched by workflows (``workflows/failures.py``), so both name them from here. Temporal
retries by an error's type, never by its message text."""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    # An outage outlasting the outage window fails the burst with its retryable type.
    LLM_RETRYABLE = "LLMRetryable"
    LLM_REJECTED = "LLMRejected"
    LLM_ACCOUNT_FATAL = "LLMAccountFatal"
    TELEGRAM_RETRYABLE = "TelegramRetryable"
    TELEGRAM_REJECTED = "TelegramRejected"
    TELEGRAM_ACCOUNT_FATAL = "TelegramAccountFatal"
    # A row the workflow relies on is absent: retrying cannot help.
    MISSING = "Missing"
    # Postgres could not be reached (retried), or refused a statement (not retried).
    DATABASE_UNAVAILABLE = "DatabaseUnavailable"
    DATABASE_ERROR = "DatabaseError"
    # A send whose outcome is unknown, past the time Telegram de-duplicates its random_id.
    SEND_IN_DOUBT = "SendInDoubt"
    # `lull retry` of a burst that is not failed, and a retry that failed again.
    NOT_FAILED = "NotFailed"
    RETRY_FAILED = "RetryFailed"
    # A step asked of a burst its author superseded: its reply is never made or sent.
    BURST_SUPERSEDED = "BurstSuperseded"
    # A reply asked of a burst that moved on with none (dropped, failed): not retried.
    BURST_CLOSED = "BurstClosed"
