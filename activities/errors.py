"""One error taxonomy for activities: Temporal retries by error *type*, never by message text."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from llm.base import LLMAuthError, LLMError, LLMRejectedError, LLMRetryableError

RETRYABLE = "Retryable"
REJECTED = "Rejected"
ACCOUNT_FATAL = "AccountFatal"
MISSING = "Missing"


def from_llm_error(exc: LLMError) -> ApplicationError:
    if isinstance(exc, LLMRetryableError):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        return ApplicationError(str(exc), type=f"LLM{RETRYABLE}", next_retry_delay=delay)
    if isinstance(exc, LLMAuthError):
        return ApplicationError(str(exc), type=f"LLM{ACCOUNT_FATAL}", non_retryable=True)
    if isinstance(exc, LLMRejectedError):
        return ApplicationError(str(exc), type=f"LLM{REJECTED}", non_retryable=True)
    return ApplicationError(str(exc), type=f"LLM{RETRYABLE}")


def missing(what: str) -> ApplicationError:
    """A row the workflow relies on is absent: retrying cannot help."""
    return ApplicationError(f"{what} not found", type=MISSING, non_retryable=True)
