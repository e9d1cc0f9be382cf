from __future__ import annotations

import pytest

from cli import COMMANDS, build_parser


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"lull {command}" in out
    assert COMMANDS[command][1] in " ".join(out.split())


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "dev", "worker", "migrate", "replay"):
        assert command in out


@pytest.mark.parametrize("command", ["ingest", "login"])
def test_telegram_commands_name_the_missing_credentials(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import main

    for name in ("LULL_TG_API_ID", "LULL_TG_API_HASH"):
        monkeypatch.delenv(name, raising=False)
    assert main([command]) == 1
    err = capsys.readouterr().err
    assert "LULL_TG_API_ID and LULL_TG_API_HASH" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["conversations", "--account", "it's"],
        ["inspect", "1", "--account", "a' OR 'x'='x"],
        ["failed", "--account", "bad key"],
        ["failed", "--limit", "-1"],
        ["failed", "--limit", "many"],
        ["pause", "1", "--minutes", "nan"],
        ["pause", "1", "--minutes", "inf"],
        ["pause", "1", "--minutes", "1e12"],
    ],
)
def test_bad_arguments_are_refused_at_parse_time_in_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"lull {argv[0]}: error: argument" in err[-1]


def test_a_visibility_query_value_cannot_end_its_literal() -> None:
    from app.ops import quoted

    assert quoted("it's") == "'it\\'s'"
    assert quoted("a\\' OR 1=1") == "'a\\\\\\' OR 1=1'"


async def test_listing_with_a_quote_in_the_account_is_an_empty_answer_not_a_bad_query(
    dev_env: object,
) -> None:
    from app.ops import list_conversations

    assert await list_conversations(dev_env.client, "it's") == []  # type: ignore[attr-defined]


def test_a_failed_activity_attempt_is_logged_in_one_line() -> None:
    import logging

    from cli import one_line_activity_failures

    try:
        try:
            raise ConnectionError("provider down")
        except ConnectionError as inner:
            raise RuntimeError("LLM 100% unavailable") from inner
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "temporalio.activity",
            logging.WARNING,
            "x",
            1,
            "Completing activity as failed (%s)",
            ({"attempt": 3},),
            sys.exc_info(),
        )
    assert one_line_activity_failures(record)
    line = logging.Formatter().format(record)
    assert "\n" not in line
    assert line.endswith("RuntimeError: LLM 100% unavailable")


def test_postgres_going_away_mid_command_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cli

    async def replay_meets_a_dead_postgres(settings: object, args: object) -> int:
        # The embedded Postgres's socket gone mid-run: asyncpg raises FileNotFoundError.
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine("postgresql+asyncpg://postgres@/x?host=/nonexistent")
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
        return 0

    monkeypatch.setitem(cli.COMMANDS, "replay", (replay_meets_a_dead_postgres, "replay"))
    assert cli.main(["replay", "script.jsonl"]) == 1
    err = capsys.readouterr().err
    assert "Postgres is unreachable" in err and "Traceback" not in err


def test_a_missing_file_that_is_not_postgres_is_not_blamed_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cli

    async def elsewhere(settings: object, args: object) -> int:
        raise FileNotFoundError(2, "No such file or directory", "some.file")

    monkeypatch.setitem(cli.COMMANDS, "replay", (elsewhere, "replay"))
    with pytest.raises(FileNotFoundError):
        cli.main(["replay", "script.jsonl"])
