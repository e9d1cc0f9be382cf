"""One error taxonomy for activities: Temporal retries by error *type*, never by message text."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from llm.base import LLMAuthError, LLMError, LLMRejectedError, LLMRetryableError
from workflows.error_types import ErrorType

# A send Telegram answered (refused): it was not delivered. Without it (a timeout, a lost
# connection) a send's outcome is unknown.
TELEGRAM_ANSWERED = "telegram-answered"


def from_llm_error(exc: LLMError) -> ApplicationError:
    if isinstance(exc, LLMRetryableError):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        return ApplicationError(str(exc), type=ErrorType.LLM_RETRYABLE, next_retry_delay=delay)
    if isinstance(exc, LLMAuthError):
        return ApplicationError(str(exc), type=ErrorType.LLM_ACCOUNT_FATAL, non_retryable=True)
    if isinstance(exc, LLMRejectedError):
        return ApplicationError(str(exc), type=ErrorType.LLM_REJECTED, non_retryable=True)
    return ApplicationError(str(exc), type=ErrorType.LLM_RETRYABLE)


def missing(what: str) -> ApplicationError:
    """A row the workflow relies on is absent: retrying cannot help."""
    return ApplicationError(f"{what} not found", type=ErrorType.MISSING, non_retryable=True)


def from_telegram_error(exc: Exception) -> ApplicationError:
    """Classify a Telethon error by type (the send path runs with Telethon's own retries off).
    An error Telegram answered carries TELEGRAM_ANSWERED in its details."""
    from telethon import errors

    err = _classify_telegram_error(exc)
    if not isinstance(exc, errors.RPCError):
        return err
    return ApplicationError(
        err.message,
        *err.details,
        TELEGRAM_ANSWERED,
        type=err.type,
        non_retryable=err.non_retryable,
        next_retry_delay=err.next_retry_delay,
    )


def telegram_answered(err: ApplicationError) -> bool:
    """Whether Telegram answered the send that failed (so it surely was not delivered)."""
    return TELEGRAM_ANSWERED in err.details


def _classify_telegram_error(exc: Exception) -> ApplicationError:
    from telethon import errors

    if isinstance(
        exc, errors.FloodWaitError | errors.SlowModeWaitError | errors.FloodPremiumWaitError
    ):
        wait = timedelta(seconds=max(1, exc.seconds))
        return ApplicationError(
            f"{type(exc).__name__}: wait {exc.seconds} s",
            type=ErrorType.TELEGRAM_RETRYABLE,
            next_retry_delay=wait,
        )
    if isinstance(exc, errors.UnauthorizedError | errors.AuthKeyDuplicatedError):
        # The session is dead (revoked, deactivated, used twice): no send can succeed.
        return ApplicationError(
            f"{type(exc).__name__}: the account's session is unusable",
            type=ErrorType.TELEGRAM_ACCOUNT_FATAL,
            non_retryable=True,
        )
    permanent = (
        errors.ChatWriteForbiddenError,
        errors.UserIsBlockedError,
        errors.PeerIdInvalidError,
        errors.InputUserDeactivatedError,
        errors.UserPrivacyRestrictedError,
        errors.ChannelPrivateError,
        errors.MessageTooLongError,
        errors.MessageEmptyError,
    )
    if isinstance(exc, permanent):
        return ApplicationError(
            f"{type(exc).__name__}: Telegram refused this send",
            type=ErrorType.TELEGRAM_REJECTED,
            non_retryable=True,
        )
    # Server errors, timeouts, dropped connections and anything unknown: try again.
    return ApplicationError(f"{type(exc).__name__}: {exc}", type=ErrorType.TELEGRAM_RETRYABLE)
