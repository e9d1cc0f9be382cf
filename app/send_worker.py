"""The worker that runs one account's sends, in the process that owns its channel."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.safe_errors import SafeErrors
from activities.sending import RANDOM_ID_TRUST_SECONDS, SendActivities
from channels.base import ChannelSender
from inbound.incoming import Account
from inbound.send_queue import send_task_queue


def build_send_worker(
    client: Client,
    *,
    task_queue: str,
    account: Account,
    sessionmaker: async_sessionmaker[AsyncSession],
    sender: ChannelSender,
    random_id_trust_seconds: float = RANDOM_ID_TRUST_SECONDS,
) -> Worker:
    """The worker that runs `send_reply` for one account, in the process owning its channel."""
    sends = SendActivities(sessionmaker, sender, random_id_trust_seconds=random_id_trust_seconds)
    return Worker(
        client,
        task_queue=send_task_queue(task_queue, account.key),
        activities=sends.activities(),
        interceptors=[SafeErrors()],
    )
