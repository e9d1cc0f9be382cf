"""Every activity failure leaves the process as a short ApplicationError that carries no
user text: the one place errors are sanitised before Temporal stores them.

An exception becomes the activity's failure (message, cause chain and stack) in the
history, and from there ``burst.error``, the ``alert`` row, ``lull failed`` and the
SDK's WARNING log. A database error's message can quote the statement's values, so it
is named by type and SQLSTATE only (db/errors.py); any other unexpected error by its type
and a bounded message. The cause chain is cut: the failure names the real cause in one
line instead of a five-deep chain the UI cannot show ("Failure exceeds size limit").
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from db.errors import database_unavailable, describe_database_error, is_database_error
from workflows.error_types import ErrorType

MAX_MESSAGE = 300


def safe_failure(exc: BaseException) -> ApplicationError:
    """The failure Temporal records for an exception an activity did not classify."""
    if database_unavailable(exc):
        return ApplicationError(
            f"database unavailable: {describe_database_error(exc)}",
            type=ErrorType.DATABASE_UNAVAILABLE,
        )
    if is_database_error(exc):
        # Refused statements do not heal by retrying; the burst fails and ops see why.
        return ApplicationError(
            f"database error: {describe_database_error(exc)}",
            type=ErrorType.DATABASE_ERROR,
            non_retryable=True,
        )
    text = str(exc)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "…"
    return ApplicationError(f"{type(exc).__name__}: {text}", type=type(exc).__name__)


def without_chain(err: ApplicationError) -> ApplicationError:
    """The same error without its cause chain, so its failure is the message alone."""
    err.__cause__ = None
    err.__suppress_context__ = True
    return err


class SafeErrors(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _SafeErrorsInbound(next)


class _SafeErrorsInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except asyncio.CancelledError:
            raise
        except ApplicationError as err:
            raise without_chain(err) from None
        except Exception as exc:
            raise safe_failure(exc) from None
