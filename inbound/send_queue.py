"""Each account's sends run on its own task queue, polled only by the process that owns
the account's channel connection: the name is made here and nowhere else."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.safe_errors import SafeErrors
from activities.sending import RANDOM_ID_TRUST_SECONDS, SendActivities
from channels.base import ChannelSender
from inbound.incoming import Account


def send_task_queue(task_queue: str, account_key: str) -> str:
    """Each account's sends run on its own queue, polled only by the process owning it."""
    return f"{task_queue}/send/{account_key}"


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
