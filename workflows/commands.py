"""Bot commands: "/name", optionally "@botname" and arguments. Pure functions."""

from __future__ import annotations

import re

# Answered by Lull itself, without the LLM; any other configured command goes to the LLM
# as a burst of its own.
BUILTIN_COMMANDS = ("start", "help", "refresh")
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s|$)")

REFRESH_REPLY = "Starting fresh: I will not use our earlier messages from now on."


def parse_command(text: str, known: frozenset[str]) -> str | None:
    """The command's name if ``text`` starts with a known command, else None."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    name = match.group(1).lower()
    return name if name in known else None


def help_text(intro: str, known: frozenset[str]) -> str:
    lines = [intro, "", "Commands:"]
    lines += [f"/{name}" for name in sorted(known)]
    return "\n".join(lines)
