from __future__ import annotations

import pytest

from workflows.commands import BUILTIN_COMMANDS, help_text, parse_command

KNOWN = frozenset({*BUILTIN_COMMANDS, "book"})


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("/start", "start"),
        ("/START", "start"),
        ("/help@LullBot", "help"),
        ("  /refresh please", "refresh"),
        ("/book tomorrow 10am", "book"),
        ("/unknown", None),
        ("start", None),
        ("/start/other", None),
        ("hi /start", None),
        ("/", None),
    ],
)
def test_parse_command(text: str, name: str | None) -> None:
    assert parse_command(text, KNOWN) == name


def test_help_lists_every_command() -> None:
    text = help_text("I answer when you pause.", KNOWN)
    assert text.startswith("I answer when you pause.")
    for name in KNOWN:
        assert f"/{name}" in text
