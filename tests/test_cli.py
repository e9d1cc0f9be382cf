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
