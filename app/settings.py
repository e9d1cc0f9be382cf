"""Lull's settings: one pydantic-settings model, every variable prefixed ``LULL_``.

Settings are read once, in entrypoints (``cli.py``), and handed to whatever needs them.
Workflows never read them: the values they need travel in the workflow input.
Operators and scripts depend on these names; rename nothing without a deprecation path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.masking import mask_url
from workflows.config_check import (
    CONFIG_BOUNDS,
    GENERATE_ATTEMPT_SECONDS,
    MAX_PAUSE_SECONDS,
    STORE_MARGIN_SECONDS,
)

# How a worker's sandbox loads workflow modules (Settings.workflow_modules).
WorkflowModules = Literal["shared", "per-run"]

ENV_PREFIX = "LULL_"

# Upper bounds of the settings that reach a workflow's timers; the workflow checks its
# config against the same bounds (workflows/config_check.py).
MAX_IDLE_CLOSE_SECONDS = CONFIG_BOUNDS["idle_close_seconds"]
MAX_WAIT_SECONDS = CONFIG_BOUNDS["max_wait_seconds"]
MAX_TYPING_WINDOW_SECONDS = CONFIG_BOUNDS["typing_window_seconds"]
MAX_PAUSE_MINUTES = MAX_PAUSE_SECONDS / 60
MAX_PRICE_PER_1K = 100.0
# The chat-hash key of the embedded dev stack: public, so refused anywhere else.
DEV_CHAT_HASH_KEY = "lull-default-chat-hash-key"
# The account of a listener given a bot token and no LULL_TG_ACCOUNT (and of `lull login`).
DEFAULT_ACCOUNT = "telegram"
# What an account key is made of (it appears in task queue names and queries).
ACCOUNT_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable and the problem."""


class Settings(BaseSettings):
    """Every knob of Lull. ``None`` for a server address means "start the embedded one"."""

    # No inf or nan anywhere: such a value would reach a workflow's timers and fail every
    # task of every conversation that was given it.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", allow_inf_nan=False)

    # Servers. Unset means the embedded defaults of `make run`.
    database_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = Field(default="lull", min_length=1)
    data_dir: Path = Path(".lull")
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)

    # Debounce. Passed to each conversation workflow in its input.
    debounce_seconds: float = Field(default=5.0, gt=0, le=3600)
    max_burst_messages: int = Field(default=10, ge=1, le=1000)
    idle_close_seconds: float = Field(default=900.0, gt=0, le=MAX_IDLE_CLOSE_SECONDS)
    max_wait_seconds: float = Field(default=60.0, gt=0, le=MAX_WAIT_SECONDS)
    max_burst_chars: int = Field(default=4000, ge=1, le=1_000_000)
    buffer_enabled: bool = True
    # How long a chat action holds the burst open (Telegram's typing status lives 6 s).
    typing_window_seconds: float = Field(default=6.0, ge=0, le=MAX_TYPING_WINDOW_SECONDS)
    recording_window_seconds: float = Field(default=15.0, ge=0, le=MAX_TYPING_WINDOW_SECONDS)
    upload_window_seconds: float = Field(default=15.0, ge=0, le=MAX_TYPING_WINDOW_SECONDS)
    max_history_events: int = Field(default=1500, ge=100, le=50_000)
    # A message from a burst's author after its flush and before its reply's first chunk:
    # "supersede" discards the reply (cancelling the LLM call) and answers both as one
    # burst; "queue" makes the message the next burst, answered after the stale reply.
    mid_reply: Literal["supersede", "queue"] = "supersede"
    # Supersedes in a row after which the reply goes out anyway (a user who never pauses).
    max_supersedes: int = Field(default=2, ge=0, le=20)
    # A reply ready while the burst's author is typing waits for the typing lease (never
    # past the max wait), so the bot does not talk over them.
    hold_reply_while_typing: bool = True
    # Conversations a worker keeps in memory (sticky cache); beyond it, a conversation's
    # next event replays its history onto the worker first.
    max_cached_workflows: int = Field(default=2000, ge=2, le=1_000_000)
    # Workflow tasks a worker runs at once. Few: after a worker restart every conversation
    # replays its history, and a hundred replays sharing two cores all overrun the 10 s
    # task timeout, are retried from scratch and overrun again. Queued tasks do not time out.
    max_concurrent_workflow_tasks: int = Field(default=10, ge=2, le=10_000)
    # Workflow-task polls a worker keeps open (at most the tasks it may run). A task that
    # finds no poll waiting goes to the server's backlog and is matched later, which under
    # load costs seconds; the SDK's default is 5.
    workflow_task_pollers: int = Field(default=10, ge=2, le=1000)
    # How the workflow sandbox loads workflow modules. "shared": imported once and shared by
    # every run (the sandbox still restricts builtins such as open), about half the memory
    # per cached conversation (80 against 160 KiB at 1,000). "per-run": the SDK default,
    # which re-imports them for each run and so also traps a wall-clock or random call at
    # run time. The test suite and the replay test always run "per-run", so such a call
    # fails CI either way.
    workflow_modules: WorkflowModules = "shared"
    # Extra commands (comma-separated, without "/") answered alone and at once by the LLM;
    # /start, /help and /refresh are always known.
    commands: str = ""

    # LLM. The provider defaults to `echo` unless an endpoint or key is configured.
    llm_provider: Literal["echo", "openai"] | None = None
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_system_prompt: str = (
        "You are a helpful assistant chatting on Telegram. The user may split one thought "
        "over several short messages; answer them together, briefly."
    )
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # The echo provider takes this long per call (cancellably): lets `lull replay` scripts
    # put a message in the middle of a generation.
    echo_delay_seconds: float = Field(default=0.0, ge=0, le=600)
    # On SIGTERM a worker lets in-flight activities finish for this long. An LLM call cut
    # short is paid again when retried, so keep it above LULL_LLM_TIMEOUT_SECONDS.
    worker_shutdown_seconds: float = Field(default=90.0, gt=0, le=3600)
    # How often the listener looks for recorded messages no burst took (a lost signal);
    # one counts once it is this much older than the max wait.
    unflushed_sweep_seconds: float = Field(default=60.0, gt=0, le=3600)
    # How long after a send that got no answer Telegram is trusted to de-duplicate a
    # repeat of it (by random_id); past it the chunk is in doubt and not sent again.
    tg_random_id_trust_seconds: float = Field(default=600.0, gt=0, le=86400)
    # How long a burst waits out an LLM or Telegram outage, retrying, before it fails (the
    # user then gets the account's error message and ops an alert).
    outage_window_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    llm_history_messages: int = Field(default=20, ge=0, le=500)
    # Per 1k tokens; the stored cost has 6 integer digits (see ReplyOptions.cost).
    llm_price_prompt_per_1k: float = Field(default=0.0, ge=0, le=MAX_PRICE_PER_1K)
    llm_price_completion_per_1k: float = Field(default=0.0, ge=0, le=MAX_PRICE_PER_1K)

    # Telegram, used by the listener (`lull ingest`).
    tg_api_id: int | None = None
    tg_api_hash: SecretStr | None = None
    tg_bot_token: SecretStr | None = None
    # The account key this listener serves (one listener per account at a time). Unset
    # with no LULL_TG_BOT_TOKEN: `lull ingest` serves every enabled account (a fleet).
    tg_account: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    # A listener fleet (no LULL_TG_ACCOUNT) looks for accounts to serve this often, and
    # takes an account no replica serves after this long even beyond its fair share
    # (how soon a dead replica's accounts are served again).
    fleet_poll_seconds: float = Field(default=2.0, gt=0, le=300)
    fleet_claim_after_seconds: float = Field(default=6.0, ge=0, le=3600)
    # host:port of an MTProto server to use instead of Telegram's (tests, proxies).
    tg_server: str | None = Field(default=None, pattern=r"^[^:]+:[0-9]+$")
    # Comma-separated ids; deny wins over allow; an empty allow-list allows everyone.
    tg_allow_users: str = ""
    tg_deny_users: str = ""
    tg_allow_chats: str = ""
    tg_deny_chats: str = ""
    # JSON object overriding media placeholders, e.g. {"photo": "[a photo]"}.
    tg_placeholders: dict[str, str] = Field(default_factory=dict)
    # A user account's owner writing or typing in a chat pauses the bot there (human
    # handoff) this long; 0: until `lull resume`.
    handoff_enabled: bool = True
    handoff_minutes: float = Field(default=60.0, ge=0, le=MAX_PAUSE_MINUTES)
    flow_ttl_hours: float = Field(default=72.0, gt=0, le=24 * 366)
    # The listener's /healthz and /readyz. Loopback by default; a pod sets 0.0.0.0 so the
    # kubelet's probes reach it.
    health_host: str = Field(default="127.0.0.1", min_length=1)
    health_port: int = Field(default=8080, ge=0, le=65535)
    # `lull worker`'s /health, /health/db, /health/temporal and /readyz (on LULL_HEALTH_HOST);
    # unset: none (a worker shares its host with listeners in development).
    worker_health_port: int | None = Field(default=None, ge=0, le=65535)
    # Prometheus metrics (the Temporal SDK's and Lull's) on this port; unset: none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # The admin API (`lull api`). Loopback by default; put it behind an HTTPS proxy.
    api_host: str = Field(default="127.0.0.1", min_length=1)
    api_port: int = Field(default=8000, ge=0, le=65535)
    # Secure (HTTPS-only) session cookies; unset: on, except on the embedded dev stack.
    api_cookie_secure: bool | None = None
    api_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Requests a minute per API key or session, per client IP, and logins per IP or user.
    api_requests_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    api_ip_requests_per_minute: int = Field(default=1200, ge=1, le=1_000_000)
    api_logins_per_minute: int = Field(default=10, ge=1, le=10_000)
    # Proxies trusted to say the client's IP (X-Forwarded-For), comma-separated.
    api_forwarded_allow_ips: str = "127.0.0.1"
    # On SIGTERM the listener finishes in-flight updates for at most this long.
    drain_seconds: float = Field(default=30.0, gt=0, le=3600)

    # Messages that reach the seam while their conversation's signal is in flight go
    # together in the next one (see inbound/signal_batches.py). Off only while workers
    # older than the `messages_received` signal still run: deploy workers first.
    ingest_batch_signals: bool = True
    # How long a message's signal may wait for the next message of its burst, so they go
    # as one (see inbound/signal_linger.py); capped at a quarter of the quiet period and
    # 1 s. Unset: that cap. 0 turns it off.
    ingest_signal_linger_seconds: float | None = Field(default=None, ge=0, le=10)

    # Seals credentials at rest (Telegram auth keys): id:base64key[,id:base64key...], the
    # first seals, all open (db/sealed.py). Unset: a key kept in LULL_DATA_DIR, for the
    # embedded dev stack only; a configured database needs it set.
    secret_key: SecretStr | None = None

    # Keys the hashes that stand for chats and users in Temporal (workflow ids, inputs,
    # signals, search attributes), so small ids cannot be brute-forced back. The embedded
    # dev stack may use a public default; anything else must set its own.
    chat_hash_key: SecretStr | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _own_chat_hash_key_outside_dev(self) -> Settings:
        if self.dev_mode:
            return self
        given = self.chat_hash_key.get_secret_value() if self.chat_hash_key else ""
        if given in ("", DEV_CHAT_HASH_KEY):
            raise ValueError(
                "LULL_CHAT_HASH_KEY must be set to a secret of your own with a configured "
                "database: the default is public, and with it the chat and user hashes in "
                "Temporal could be reversed"
            )
        if len(given) < 16:
            raise ValueError("LULL_CHAT_HASH_KEY must be at least 16 characters")
        return self

    @property
    def chat_key(self) -> bytes:
        """The key of the chat and sender hashes (the public dev key on the dev stack)."""
        if self.chat_hash_key is None:
            return DEV_CHAT_HASH_KEY.encode()
        return self.chat_hash_key.get_secret_value().encode()

    @model_validator(mode="after")
    def _shutdown_outlasts_an_llm_call(self) -> Settings:
        if self.worker_shutdown_seconds < self.llm_timeout_seconds:
            raise ValueError(
                f"LULL_WORKER_SHUTDOWN_SECONDS ({self.worker_shutdown_seconds:g}) must be at "
                f"least LULL_LLM_TIMEOUT_SECONDS ({self.llm_timeout_seconds:g}): a shutdown "
                "that cuts an LLM call short pays for it again"
            )
        return self

    @model_validator(mode="after")
    def _an_llm_call_fits_its_attempt(self) -> Settings:
        attempt = max(GENERATE_ATTEMPT_SECONDS, self.outage_window_minutes * 60)
        if self.llm_timeout_seconds > attempt - STORE_MARGIN_SECONDS:
            raise ValueError(
                f"LULL_LLM_TIMEOUT_SECONDS ({self.llm_timeout_seconds:g}) must be at most "
                f"{attempt - STORE_MARGIN_SECONDS:g}: a generate attempt may run "
                f"{attempt:g} s (3 min, or the outage window if longer), and a call still "
                "running when Temporal times the attempt out is retried and paid again"
            )
        return self

    @model_validator(mode="after")
    def _pick_llm_provider(self) -> Settings:
        if self.llm_provider is None:
            configured = self.llm_base_url is not None or self.llm_api_key is not None
            self.llm_provider = "openai" if configured else "echo"
        if self.llm_provider == "openai" and self.llm_base_url is None and self.llm_api_key is None:
            raise ValueError("LULL_LLM_PROVIDER=openai needs LULL_LLM_BASE_URL or LULL_LLM_API_KEY")
        return self

    @property
    def command_names(self) -> frozenset[str]:
        from workflows.commands import BUILTIN_COMMANDS

        extra = (c.strip().lstrip("/").lower() for c in self.commands.split(","))
        return frozenset(BUILTIN_COMMANDS) | {c for c in extra if c}

    @field_validator("secret_key")
    @classmethod
    def _secret_keys(cls, value: SecretStr | None) -> SecretStr | None:
        from db.sealed import SecretBox, SecretKeyError

        if value is not None:
            try:
                SecretBox.parse(value.get_secret_value())
            except SecretKeyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("commands")
    @classmethod
    def _command_names(cls, value: str) -> str:
        for part in value.split(","):
            name = part.strip().lstrip("/")
            if name and not re.fullmatch(r"[A-Za-z0-9_]{1,32}", name):
                raise ValueError(f"a command is 1-32 letters, digits or _, got {part.strip()!r}")
        return value

    @field_validator("tg_placeholders")
    @classmethod
    def _placeholder_templates(cls, value: dict[str, str]) -> dict[str, str]:
        from channels.telegram.events import DEFAULT_PLACEHOLDERS, PLACEHOLDER_FIELDS

        for kind, template in value.items():
            if kind not in DEFAULT_PLACEHOLDERS:
                known = ", ".join(sorted(DEFAULT_PLACEHOLDERS))
                raise ValueError(f"unknown media kind {kind!r} (known: {known})")
            try:
                template.format(**dict.fromkeys(PLACEHOLDER_FIELDS, "x"))
            except (ValueError, KeyError, IndexError, AttributeError) as exc:
                fields = ", ".join("{" + f + "}" for f in PLACEHOLDER_FIELDS)
                raise ValueError(
                    f"placeholder {kind!r} is not a valid template ({exc}); it may use {fields}"
                ) from None
            if not template.strip():
                raise ValueError(f"placeholder {kind!r} is empty")
        return value

    @field_validator("tg_allow_users", "tg_deny_users", "tg_allow_chats", "tg_deny_chats")
    @classmethod
    def _comma_separated_ids(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip() and not part.strip().lstrip("-").isdigit():
                raise ValueError(f"expected comma-separated ids, got {part.strip()!r}")
        return value

    def id_list(self, name: str) -> frozenset[int]:
        raw: str = getattr(self, name)
        return frozenset(int(part) for part in raw.split(",") if part.strip())

    @property
    def listener_account(self) -> str | None:
        """The one account `lull ingest` serves; None: every enabled one (a fleet). A bot
        token alone keeps the key it always had."""
        if self.tg_account is not None:
            return self.tg_account
        return DEFAULT_ACCOUNT if self.tg_bot_token is not None else None

    @property
    def dev_mode(self) -> bool:
        """The embedded stack of `make run`: no configured database."""
        return self.database_url is None

    @property
    def llm_label(self) -> str:
        """What the banner says about the active provider; never includes a credential."""
        if self.llm_provider == "echo":
            return "echo (offline; set LULL_LLM_BASE_URL / LULL_LLM_API_KEY for a real model)"
        where = mask_url(self.llm_base_url) if self.llm_base_url else "api.openai.com"
        return f"openai-compatible {self.llm_model} at {where}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning a validation error into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        problems.append(f"{name}: {msg}" if field else msg)
    return "bad setting: " + "; ".join(problems)
