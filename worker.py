"""The stateless worker: conversation workflows plus the DB and LLM activities.

Scales out as pods; every client is built here once and injected into the activities.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.bursts import BurstActivities
from activities.heartbeat import HEARTBEAT_THROTTLE
from activities.replies import ReplyActivities, ReplyOptions
from activities.safe_errors import SafeErrors
from app.settings import Settings, WorkflowModules
from llm.base import LLMProvider
from workflows.admin_send import AdminSendWorkflow
from workflows.conversation import ConversationWorkflow
from workflows.retry_burst import RetryBurstWorkflow

log = logging.getLogger("lull.worker")


def reply_options(settings: Settings) -> ReplyOptions:
    return ReplyOptions(
        default_model=settings.llm_model,
        default_system_prompt=settings.llm_system_prompt,
        history_bursts=settings.llm_history_messages,
        price_prompt_per_1k=Decimal(str(settings.llm_price_prompt_per_1k)),
        price_completion_per_1k=Decimal(str(settings.llm_price_completion_per_1k)),
        commands=settings.command_names,
    )


def workflow_runner(modules: WorkflowModules) -> WorkflowRunner:
    """The sandbox, with workflow modules shared by all runs or imported per run.

    Per run, each cached conversation carries its own copy of workflows/conversation.py
    and its restricted module proxies: about 80 KiB of the 160 it costs at 1,000."""
    if modules == "shared":
        return SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
        )
    return SandboxedWorkflowRunner()


def build_worker(
    client: Client,
    *,
    task_queue: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: LLMProvider,
    options: ReplyOptions,
    max_cached_workflows: int = 2000,
    max_concurrent_workflow_tasks: int = 10,
    workflow_task_pollers: int = 10,
    workflow_modules: WorkflowModules = "shared",
    shutdown_grace_seconds: float = 90.0,
) -> Worker:
    bursts = BurstActivities(sessionmaker)
    replies = ReplyActivities(sessionmaker, provider, options)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ConversationWorkflow, RetryBurstWorkflow, AdminSendWorkflow],
        workflow_runner=workflow_runner(workflow_modules),
        activities=[*bursts.activities(), *replies.activities()],
        interceptors=[SafeErrors()],
        # A shutdown lets in-flight activities finish for this long: an LLM call cut short
        # is paid again by its retry, so it defaults above the LLM timeout.
        graceful_shutdown_timeout=timedelta(seconds=shutdown_grace_seconds),
        max_cached_workflows=max_cached_workflows,
        # A superseded burst's LLM call hears of its cancel within this (see the constant).
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(
            min(workflow_task_pollers, max_concurrent_workflow_tasks)
        ),
    )


async def run_until(worker: Worker, stop: asyncio.Event) -> None:
    """Run a worker until ``stop`` is set, then shut it down gracefully."""
    async with worker:
        log.info("worker polling task queue %s", worker.task_queue)
        await stop.wait()
