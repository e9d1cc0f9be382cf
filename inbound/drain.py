"""Signals that need no seam state, and waiting until an account's messages are answered
(the console, `lull replay` and the bench drain with it)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.queries import messages as db_messages


async def signal_open_conversation(
    client: Client, workflow_id: str, signal: str, arg: object
) -> bool:
    """Signal a conversation only if it is open; returns False when none is. Typing, edits
    and deletes never start a conversation: with none open there is nothing to change."""
    try:
        await client.get_workflow_handle(workflow_id).signal(signal, arg)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def wait_until_answered(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int, *, within: float
) -> int:
    """Poll until every live message of the account is in a sent or failed burst.

    Returns how many are still pending after ``within`` seconds (0 when all are done).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with sessionmaker() as session:
            pending = await db_messages.pending_message_count(session, account_id)
        if pending == 0 or loop.time() >= deadline:
            return pending
        await asyncio.sleep(0.05)
