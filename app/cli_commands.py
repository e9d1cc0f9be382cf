"""What each `lull` command does; cli.py parses the arguments and reports errors."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from temporalio.client import Client

from app import ops
from app.dev_stack import StackError, dev_stack_running, running_stack, wait_for_temporal
from app.health import HealthServer
from app.settings import Settings
from app.wiring import banner, database_only, lull_runtime, secret_box, stop_on_signals
from channels import console, replay
from db import migrate
from db.errors import describe_database_error
from db.queries import bursts as db_bursts
from inbound.accounts import register_account
from inbound.drain import wait_until_answered
from workflows.ids import (
    chat_reference,
    conversation_workflow_id,
    legacy_conversation_workflow_id,
)

log = logging.getLogger("lull")

# Replies may take this long after the last event of a replay before we give up waiting.
REPLAY_DRAIN_GRACE_SECONDS = 120.0


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    async with lull_runtime(settings) as rt:
        account = await register_account(
            rt.sessionmaker, key=console.CONSOLE_ACCOUNT_KEY, kind="console", display_name="Console"
        )
        ingestor = rt.build_ingestor(account)
        send_worker = rt.build_send_worker(account, console.ConsoleSender(sys.stdout))
        async with rt.build_worker(), send_worker:
            print(banner(rt))
            print("Type messages, one per line. Lull replies once you pause. Ctrl-C to quit.")
            await console.chat(
                ingestor,
                rt.sessionmaker,
                stop,
                out=sys.stdout,
                drain_timeout=settings.debounce_seconds + 60,
            )
    print("\nstopped.")
    return 0


async def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    async with lull_runtime(settings) as rt, rt.build_worker():
        print(banner(rt), flush=True)
        print("Worker running; Ctrl-C to stop.", flush=True)
        await stop.wait()
    return 0


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    # Unset servers mean the embedded ones of a running `lull dev`: join, don't start.
    async with (
        lull_runtime(settings, run_migrations=False, attach=True) as rt,
        rt.build_worker(),
        contextlib.AsyncExitStack() as stack,
    ):
        if settings.worker_health_port is not None:
            await stack.enter_async_context(
                HealthServer(
                    rt.dependency_checks(),
                    host=settings.health_host,
                    port=settings.worker_health_port,
                )
            )
        log.info("worker up on %s, queue %s", rt.stack.temporal_address, settings.task_queue)
        await stop.wait()
    return 0


async def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    import ingest as telegram_service

    _require_telegram_app(settings)
    stop = stop_on_signals()
    # Like a worker, a listener joins the servers of a running `lull dev` when none are set.
    async with lull_runtime(settings, run_migrations=False, attach=True) as rt:
        return await telegram_service.serve(rt, stop)


async def cmd_login(settings: Settings, args: argparse.Namespace) -> int:
    import ingest as telegram_service

    _require_telegram_app(settings)
    async with lull_runtime(settings, run_migrations=True, attach=True) as rt:
        print(await telegram_service.login(rt))
    return 0


def _require_telegram_app(settings: Settings) -> None:
    # Checked before any server starts, so the mistake is the first thing reported.
    if settings.tg_api_id is None or settings.tg_api_hash is None:
        raise StackError(
            "Telegram needs LULL_TG_API_ID and LULL_TG_API_HASH (create an app at "
            "https://my.telegram.org)"
        )


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with running_stack(settings, with_temporal=False) as stack:
        if args.downgrade:
            await migrate.downgrade(stack.database_url, args.downgrade)
        else:
            await migrate.upgrade(stack.database_url)
    print(f"database at revision {args.downgrade or 'head'}")
    return 0


async def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    events = replay.load_script(Path(args.script))
    # Beside a running `lull dev`, join its servers instead of failing to start our own.
    async with lull_runtime(settings, attach=dev_stack_running(settings)) as rt:
        key = f"replay-{uuid.uuid4().hex[:12]}"
        account = await register_account(rt.sessionmaker, key=key, kind="replay", display_name=key)
        ingestor = rt.build_ingestor(account)
        send_worker = rt.build_send_worker(account, replay.ReplaySender())
        async with rt.build_worker(), send_worker:
            loop = asyncio.get_running_loop()
            started_at = replay.now_utc()
            await replay.feed(
                ingestor,
                events,
                start=loop.time(),
                started_at=started_at,
                on_reject=lambda why: print(f"rejected {why}", file=sys.stderr),
            )
            pending = await wait_until_answered(
                rt.sessionmaker,
                account.id,
                within=settings.debounce_seconds + REPLAY_DRAIN_GRACE_SECONDS,
            )
            # The replay account is this run's alone: close its conversations before the
            # worker goes, or they would sit on the server timing out workflow tasks.
            await ingestor.close_conversations("replay finished")
        async with rt.sessionmaker() as session:
            rows = await db_bursts.finished_bursts(session, account.id)
    replay.write_lines(
        sys.stdout,
        (replay.transcript_line(key, r, started_at) for r in rows if r.status == "sent"),
    )
    failed = [row for row in rows if row.status == "failed"]
    for row in failed:
        print(f"burst {row.burst_key} failed: {row.error_type}: {row.error}", file=sys.stderr)
    if pending:
        print(f"{pending} messages were not answered in time", file=sys.stderr)
    return 1 if pending or failed else 0


async def _ops_client(settings: Settings) -> Client:
    address = settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    return await wait_for_temporal(address, settings.temporal_namespace, within=5)


def _workflow_ids(settings: Settings, args: argparse.Namespace) -> list[str]:
    """The conversation's workflow id from the chat id (its keyed hash), then the id its
    run had before keyed ids, for a run that started before an upgrade."""
    ref = chat_reference(settings.chat_key, args.account, args.chat, args.topic)
    return [
        conversation_workflow_id(args.account, ref),
        legacy_conversation_workflow_id(args.account, args.chat, args.topic),
    ]


async def _on_conversation(
    settings: Settings, args: argparse.Namespace, act: Callable[[str], Awaitable[Any]]
) -> Any:
    keyed, legacy = _workflow_ids(settings, args)
    try:
        return await act(keyed)
    except ops.NoConversationError as missing:
        try:
            return await act(legacy)
        except ops.NoConversationError:
            raise missing from None


async def cmd_conversations(settings: Settings, args: argparse.Namespace) -> int:
    client = await _ops_client(settings)
    for row in await ops.list_conversations(client, args.account):
        print(ops.to_json(row))
    return 0


async def cmd_inspect(settings: Settings, args: argparse.Namespace) -> int:
    client = await _ops_client(settings)
    shown = await _on_conversation(settings, args, partial(ops.inspect, client))
    # From the transcript: what supersedes discarded (the run's state counts them too).
    if settings.database_url is None and not dev_stack_running(settings):
        shown["supersedes"] = "unavailable: no database (set LULL_DATABASE_URL)"
        print(ops.to_json(shown))
        return 0
    try:
        async with database_only(settings) as sessionmaker:
            spend = await ops.supersede_spend(sessionmaker, args.account, args.chat, args.topic)
        shown["supersedes"] = spend
    except Exception as exc:  # the state from Temporal is still worth showing
        shown["supersedes"] = f"unavailable: {describe_database_error(exc)}"
    print(ops.to_json(shown))
    return 0


async def cmd_control(settings: Settings, args: argparse.Namespace) -> int:
    client = await _ops_client(settings)
    minutes = getattr(args, "minutes", None)
    control = partial(ops.control, client, action=args.command, minutes=minutes)
    state = await _on_conversation(settings, args, control)
    print(ops.to_json(state))
    return 0


async def cmd_secrets(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "new-key":
        from db.sealed import SecretBox

        print(SecretBox.new_key_setting(args.key_id))
        return 0
    from channels.telegram.session import reseal_auth_keys

    box = secret_box(settings)
    async with database_only(settings) as sessionmaker:
        changed, unreadable = await reseal_auth_keys(sessionmaker, box)
    print(f"{changed} stored credentials re-sealed with key {box.current!r}")
    if unreadable:
        # Keep the old key in LULL_SECRET_KEY until these are sorted out.
        print(f"lull: opens with no key given: {', '.join(unreadable)}", file=sys.stderr)
        return 1
    return 0


async def cmd_failed(settings: Settings, args: argparse.Namespace) -> int:
    # Postgres only: failures are looked at most when something else is down.
    async with database_only(settings) as sessionmaker:
        rows = await ops.failed_bursts(sessionmaker, args.account, limit=args.limit)
    for row in rows:
        print(ops.to_json(row))
    return 0


async def cmd_retry(settings: Settings, args: argparse.Namespace) -> int:
    if (args.burst is None) == (not args.all_failed):
        print("lull: give a burst key, or --all-failed (not both)", file=sys.stderr)
        return 2
    if args.all_failed:
        return await _retry_all_failed(settings, args)
    async with lull_runtime(settings, run_migrations=False, attach=True) as rt:
        sends_on = await ops.retry_send_queue(
            rt.sessionmaker, args.burst, task_queue=settings.task_queue
        )
        if await ops.activity_pollers(rt.client, sends_on) == 0:
            # Said at once: the retry's send waits for a listener up to the outage window.
            print(
                f"lull: no listener polls {sends_on} (is `lull ingest` running for this "
                "account?); the retry's send waits for one"
                + ("" if args.no_wait else "; --no-wait returns at once"),
                file=sys.stderr,
            )
        result = await ops.retry_burst(
            rt.client,
            args.burst,
            task_queue=settings.task_queue,
            sends_on=sends_on,
            outage_window_seconds=settings.outage_window_minutes * 60,
            wait=not args.no_wait,
            resend_in_doubt=args.resend_in_doubt,
        )
    if isinstance(result, str):
        print(ops.to_json({"status": "started", "workflow_id": result}))
        return 0
    print(ops.to_json(result))
    if result.status == "nothing_to_retry":
        print(f"lull: nothing to retry: {result.detail}", file=sys.stderr)
    return 0 if result.status in ("sent", "nothing_to_retry") else 1


async def _retry_all_failed(settings: Settings, args: argparse.Namespace) -> int:
    """Every failed burst (of ``--account``), oldest first so each chat's replies keep
    their order, one at a time: a line per burst, exit 1 if any failed again."""
    async with lull_runtime(settings, run_migrations=False, attach=True) as rt:
        rows = await ops.failed_bursts(rt.sessionmaker, args.account, limit=10_000)
        failed_again = 0
        for row in reversed(rows):
            key = row["burst_key"]
            sends_on = await ops.retry_send_queue(
                rt.sessionmaker, key, task_queue=settings.task_queue
            )
            try:
                result = await ops.retry_burst(
                    rt.client,
                    key,
                    task_queue=settings.task_queue,
                    sends_on=sends_on,
                    outage_window_seconds=settings.outage_window_minutes * 60,
                    resend_in_doubt=args.resend_in_doubt,
                )
            except (ops.RetryFailedError, ops.RetryRefusedError) as exc:
                failed_again += 1
                print(ops.to_json({"burst_key": key, "status": "failed", "detail": str(exc)}))
                continue
            assert not isinstance(result, str)  # waited for
            print(ops.to_json({"burst_key": key, "status": result.status}))
    print(f"lull: retried {len(rows)} failed bursts, {failed_again} failed again", file=sys.stderr)
    return 1 if failed_again else 0


COMMANDS = {
    "run": (
        cmd_run,
        "the stack (embedded servers unless configured), a worker and the console chat",
    ),
    "dev": (cmd_dev, "the stack and a worker, without the chat"),
    "worker": (cmd_worker, "a worker: conversation workflows plus the DB and LLM activities"),
    "ingest": (
        cmd_ingest,
        "the Telegram listener of one account (LULL_TG_ACCOUNT), or of every enabled "
        "account shared between replicas; hosts their sends",
    ),
    "login": (cmd_login, "log a Telegram user account in and store its session in Postgres"),
    "migrate": (cmd_migrate, "upgrade the database to the latest schema"),
    "replay": (cmd_replay, "feed a scripted conversation (JSON lines) and print the replies"),
    "conversations": (cmd_conversations, "list open conversations (Temporal visibility)"),
    "inspect": (cmd_inspect, "show a conversation's state: buffer, deadline, phase"),
    "flush": (cmd_control, "answer a conversation's buffered messages now"),
    "clear": (cmd_control, "drop a conversation's buffer unanswered (kept recorded)"),
    "pause": (cmd_control, "stop replying in a conversation (human handoff)"),
    "resume": (cmd_control, "start replying in a paused conversation again"),
    "failed": (cmd_failed, "list failed bursts, newest first (JSON lines)"),
    "secrets": (
        cmd_secrets,
        "new-key: print a new LULL_SECRET_KEY entry; rotate: re-seal stored credentials "
        "with the first key of LULL_SECRET_KEY",
    ),
    "retry": (cmd_retry, "re-run a failed burst's remaining steps (no second LLM call)"),
}
CHAT_COMMANDS = ("inspect", "flush", "clear", "pause", "resume")
