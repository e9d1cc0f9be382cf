"""Each account's sends run on its own task queue, polled only by the process that owns
the account's channel connection: the name is made here and nowhere else."""

from __future__ import annotations


def send_task_queue(task_queue: str, account_key: str) -> str:
    """Each account's sends run on its own queue, polled only by the process owning it."""
    return f"{task_queue}/send/{account_key}"
