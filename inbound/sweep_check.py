"""Which recorded messages a conversation's run never took, asked before the sweep resends.

The ingest's sweep (ingest.py) signals again messages recorded long ago that no burst holds.
Most of them are simply buffered behind a slow burst (an LLM outage holds a chat's backlog
for up to the outage window). Resending those every round only grows the run's history:
each resend is a signal the run decodes, and a workflow task that takes enough of them
outlasts the SDK's two-second deadlock timeout, fails, and fails again on every retry,
wedging the chat for good. So the sweep asks the run first (the ``unseen`` query, which
adds nothing to its history) and sends only what it lacks.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode

from workflows.conversation import ConversationWorkflow

# A query waits for a worker to answer it; a run whose worker is this slow is asked again
# next round.
QUERY_TIMEOUT = timedelta(seconds=5)

log = logging.getLogger("lull.ingest")


async def unseen_by_run(
    client: Client, workflow_id: str, message_ids: list[int]
) -> set[int] | None:
    """The ids the chat's open run has not taken; all of them when no run is open (the
    resend's signal-with-start starts one); None when the run could not answer (its
    workflow task fails): it is asked again next round. A query that times out (no
    worker answering) raises, ending the round, as a Temporal outage does."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        unseen = await handle.query(
            ConversationWorkflow.unseen,
            message_ids,
            reject_condition=QueryRejectCondition.NOT_OPEN,
            rpc_timeout=QUERY_TIMEOUT,
        )
    except WorkflowQueryRejectedError:
        return set(message_ids)  # the run is closed: a new one takes them
    except WorkflowQueryFailedError as failed:
        log.warning(
            "conversation %s could not say which of %d recorded message(s) it holds (%s); "
            "asking again next sweep",
            workflow_id,
            len(message_ids),
            failed.message,
        )
        return None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return set(message_ids)  # no run at all
        raise
    return set(unseen)
