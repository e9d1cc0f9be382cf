"""How a failed burst is named and whether its user hears of it. Pure functions of the
error Temporal hands the workflow, so they are safe in workflow code."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError

from workflows.error_types import ErrorType

# Telegram itself cannot deliver to this chat (or at all): an error notice would fail too.
# A burst that had already moved on (dropped, failed) said what it had to when it did.
SILENT_FAILURES = frozenset(
    {ErrorType.TELEGRAM_ACCOUNT_FATAL, ErrorType.TELEGRAM_REJECTED, ErrorType.BURST_CLOSED}
)


def error_type_of(err: ActivityError) -> str:
    """The taxonomy's error type ("LLMRejected", "TelegramRetryable", ...; a retryable type
    means the outage outlasted the window), or for a step that ran out of time "Timeout"
    plus the timeout's kind ("TimeoutStartToClose")."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    if isinstance(cause, TimeoutError) and cause.type is not None:
        return "Timeout" + "".join(part.title() for part in cause.type.name.split("_"))
    return type(cause or err).__name__


def error_text_of(err: ActivityError) -> str:
    cause = err.cause
    text = str(cause or err)
    if err.retry_state == RetryState.TIMEOUT and not isinstance(cause, TimeoutError):
        # Retryable errors until the next attempt would have passed the outage window.
        return f"still failing when the outage window closed: {text}"
    inner = getattr(cause, "cause", None)
    # A timed-out step's own message is bland; the last attempt's error says more.
    return f"{text}: {inner}" if isinstance(cause, TimeoutError) and inner else text


# The reply may be on the user's screen already (its send was never answered): an error
# notice would contradict it. Silent from the promises release on.
IN_DOUBT_FAILURES = frozenset({ErrorType.SEND_IN_DOUBT})


def tells_user(error_type: str, *, in_doubt_is_silent: bool = True) -> bool:
    """Whether the user gets the account's error message for a burst failed this way."""
    silent: frozenset[str] = SILENT_FAILURES | (
        IN_DOUBT_FAILURES if in_doubt_is_silent else frozenset()
    )
    return error_type not in silent
