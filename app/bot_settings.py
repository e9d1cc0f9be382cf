"""A bot's own settings, stored in ``account.settings`` and edited through the admin API.

Each field left unset falls back to the process's LULL_ setting, so a bot created with no
settings behaves exactly as a listener configured by environment alone. The bounds are
the environment settings' own (app/settings.py), so a value the API accepts is one a
workflow accepts.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.settings import MAX_TYPING_WINDOW_SECONDS, MAX_WAIT_SECONDS, Settings
from channels.telegram.filters import AccessLists
from channels.telegram.update_jobs import CallbackButton
from workflows.payloads import ConversationConfig

# Telegram ids are 64-bit signed (chats carry the -100 prefix).
TelegramId = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
COMMAND_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")


class Button(BaseModel):
    """A pressed inline button: ``text`` joins the burst as that text; ``answer`` is shown
    to the user at once (``alert``: as a dialog). With neither, the press is recorded and
    answered with nothing (the spinner stops)."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None = Field(default=None, min_length=1, max_length=200)
    alert: bool = False
    text: str | None = Field(default=None, min_length=1, max_length=4096)


class BotSettings(BaseModel):
    """Per-bot overrides. ``None`` (or an empty list) keeps the process's setting."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    debounce_seconds: float | None = Field(default=None, gt=0, le=3600)
    max_burst_messages: int | None = Field(default=None, ge=1, le=1000)
    max_burst_chars: int | None = Field(default=None, ge=1, le=1_000_000)
    max_wait_seconds: float | None = Field(default=None, gt=0, le=MAX_WAIT_SECONDS)
    typing_window_seconds: float | None = Field(default=None, ge=0, le=MAX_TYPING_WINDOW_SECONDS)
    mid_reply: Literal["supersede", "queue"] | None = None
    allow_users: list[TelegramId] = Field(default_factory=list, max_length=10_000)
    deny_users: list[TelegramId] = Field(default_factory=list, max_length=10_000)
    allow_chats: list[TelegramId] = Field(default_factory=list, max_length=10_000)
    deny_chats: list[TelegramId] = Field(default_factory=list, max_length=10_000)
    # Inline buttons by their callback data (at most 64 bytes, as Telegram allows).
    buttons: dict[str, Button] = Field(default_factory=dict, max_length=1000)
    # Extra commands (without "/") answered alone and at once, besides /start, /help and
    # /refresh; None keeps LULL_COMMANDS.
    commands: list[str] | None = Field(default=None, max_length=100)

    @field_validator("commands")
    @classmethod
    def _command_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = []
        for raw in value:
            name = raw.strip().lstrip("/")
            if not COMMAND_NAME.fullmatch(name):
                raise ValueError(f"a command is 1-32 letters, digits or _, got {raw!r}")
            names.append(name.lower())
        return sorted(set(names))

    @field_validator("buttons")
    @classmethod
    def _button_data(cls, value: dict[str, Button]) -> dict[str, Button]:
        for data in value:
            if not 1 <= len(data.encode()) <= 64:
                raise ValueError(f"button data is 1-64 bytes, got {data!r}")
        return value

    def callback_buttons(self) -> dict[str, CallbackButton]:
        return {data: CallbackButton(b.answer, b.alert, b.text) for data, b in self.buttons.items()}

    @classmethod
    def stored(cls, raw: dict[str, Any] | None) -> BotSettings:
        """The settings as stored; a row written by an older release may lack fields."""
        return cls.model_validate(raw or {})

    def conversation_config(self, base: ConversationConfig) -> ConversationConfig:
        """``base`` (the process's settings) with this bot's overrides applied."""
        overrides = {
            name: getattr(self, name)
            for name in (
                "debounce_seconds",
                "max_burst_messages",
                "max_burst_chars",
                "max_wait_seconds",
                "typing_window_seconds",
                "mid_reply",
            )
            if getattr(self, name) is not None
        }
        return dataclasses.replace(base, **overrides)

    def access_lists(self, settings: Settings) -> AccessLists:
        """The bot's lists where it has them, else the process's LULL_TG_* lists."""

        def pick(own: list[int], env: str) -> frozenset[int]:
            return frozenset(own) if own else settings.id_list(env)

        return AccessLists(
            allow_users=pick(self.allow_users, "tg_allow_users"),
            deny_users=pick(self.deny_users, "tg_deny_users"),
            allow_chats=pick(self.allow_chats, "tg_allow_chats"),
            deny_chats=pick(self.deny_chats, "tg_deny_chats"),
        )

    def command_names(self, settings: Settings) -> frozenset[str]:
        if self.commands is None:
            return settings.command_names
        from workflows.commands import BUILTIN_COMMANDS

        return frozenset(BUILTIN_COMMANDS) | set(self.commands)
