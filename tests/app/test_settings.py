from __future__ import annotations

import subprocess
import sys

import pytest

from app.settings import SettingsError, load_settings


def test_defaults_choose_echo_and_a_five_second_period(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "LULL_LLM_PROVIDER",
        "LULL_LLM_BASE_URL",
        "LULL_LLM_API_KEY",
        "LULL_DEBOUNCE_SECONDS",
    ):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.llm_provider == "echo"
    assert settings.debounce_seconds == 5
    assert settings.max_burst_messages == 10
    assert "echo" in settings.llm_label


def test_the_signal_linger_defaults_to_its_cap_and_zero_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LULL_INGEST_SIGNAL_LINGER_SECONDS", raising=False)
    assert load_settings().ingest_signal_linger_seconds is None  # SignalLinger's own cap
    monkeypatch.setenv("LULL_INGEST_SIGNAL_LINGER_SECONDS", "0")
    assert load_settings().ingest_signal_linger_seconds == 0


def test_fractional_debounce_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LULL_DEBOUNCE_SECONDS", "0.25")
    assert load_settings().debounce_seconds == 0.25


def test_a_base_url_selects_the_openai_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LULL_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LULL_LLM_API_KEY", "sk-secret")
    settings = load_settings()
    assert settings.llm_provider == "openai"
    assert "sk-secret" not in settings.llm_label
    assert "sk-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("LULL_DEBOUNCE_SECONDS", "abc"),
        ("LULL_DEBOUNCE_SECONDS", "-1"),
        ("LULL_MAX_BURST_MESSAGES", "0"),
        ("LULL_LLM_PROVIDER", "gpt"),
        ("LULL_WORKFLOW_MODULES", "none"),
        ("LULL_INGEST_SIGNAL_LINGER_SECONDS", "-0.5"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=var):
        load_settings()


def test_openai_without_endpoint_or_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LULL_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("LULL_LLM_API_KEY", raising=False)
    monkeypatch.setenv("LULL_LLM_PROVIDER", "openai")
    with pytest.raises(SettingsError, match="LULL_LLM_BASE_URL"):
        load_settings()


def test_the_cli_stops_with_one_line_naming_the_variable() -> None:
    env = {"LULL_MAX_BURST_MESSAGES": "many", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "dev"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LULL_MAX_BURST_MESSAGES" in lines[0]


# Each value the promises issue found poisoning conversations or processes: refused at
# start-up with one line naming the variable.
POISON = [
    ("LULL_MAX_WAIT_SECONDS", "inf"),
    ("LULL_TYPING_WINDOW_SECONDS", "inf"),
    ("LULL_RECORDING_WINDOW_SECONDS", "nan"),
    ("LULL_IDLE_CLOSE_SECONDS", "1e30"),
    ("LULL_DEBOUNCE_SECONDS", "nan"),
    ("LULL_MAX_CACHED_WORKFLOWS", "1000000000000"),
    ("LULL_MAX_CONCURRENT_WORKFLOW_TASKS", "1000000000"),
    ("LULL_LLM_PRICE_PROMPT_PER_1K", "1e9"),
    ("LULL_LLM_PRICE_COMPLETION_PER_1K", "inf"),
    ("LULL_HANDOFF_MINUTES", "inf"),
    ("LULL_HANDOFF_MINUTES", "1e12"),
    ("LULL_OUTAGE_WINDOW_MINUTES", "nan"),
    ("LULL_LLM_TIMEOUT_SECONDS", "inf"),
    ("LULL_DRAIN_SECONDS", "inf"),
    ("LULL_FLOW_TTL_HOURS", "1e300"),
    ("LULL_MAX_BURST_CHARS", "99999999999"),
    ("LULL_INGEST_SIGNAL_LINGER_SECONDS", "inf"),
    ("LULL_TG_PLACEHOLDERS", '{"photo": "[photo {"}'),
    ("LULL_TG_PLACEHOLDERS", '{"photo": "[photo {size}]"}'),
    ("LULL_TG_PLACEHOLDERS", '{"hologram": "[hologram]"}'),
    ("LULL_COMMANDS", "book,can cel"),
]


@pytest.mark.parametrize(("variable", "value"), POISON)
def test_a_value_that_would_poison_conversations_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert variable in message and "\n" not in message


def test_a_placeholder_may_use_the_values_of_its_media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LULL_TG_PLACEHOLDERS", '{"voice": "[voice {duration}]"}')
    assert load_settings().tg_placeholders == {"voice": "[voice {duration}]"}


def test_a_bad_placeholder_template_still_stands_for_the_media() -> None:
    from channels.telegram.events import Placeholders

    assert Placeholders({"photo": "[photo {", "other": "[media]"}).render("photo") == "[photo {"


@pytest.mark.parametrize("key", [None, "lull-default-chat-hash-key", "short"])
def test_outside_the_dev_stack_the_chat_hash_key_must_be_our_own(
    monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    monkeypatch.setenv("LULL_DATABASE_URL", "postgresql+asyncpg://db/lull")
    monkeypatch.delenv("LULL_CHAT_HASH_KEY", raising=False)
    if key is not None:
        monkeypatch.setenv("LULL_CHAT_HASH_KEY", key)
    with pytest.raises(SettingsError, match="LULL_CHAT_HASH_KEY"):
        load_settings()
    monkeypatch.setenv("LULL_CHAT_HASH_KEY", "a-key-of-our-very-own")
    assert load_settings().chat_key == b"a-key-of-our-very-own"


def test_the_dev_stack_may_use_the_public_chat_hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LULL_DATABASE_URL", raising=False)
    monkeypatch.delenv("LULL_CHAT_HASH_KEY", raising=False)
    assert load_settings().chat_key == b"lull-default-chat-hash-key"


def test_an_llm_timeout_longer_than_a_generate_attempt_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A call still running when Temporal times its attempt out is retried and paid again,
    # forever: a slow LLM must be cut by its own timeout, inside the attempt.
    monkeypatch.setenv("LULL_OUTAGE_WINDOW_MINUTES", "1")
    monkeypatch.setenv("LULL_WORKER_SHUTDOWN_SECONDS", "600")
    monkeypatch.setenv("LULL_LLM_TIMEOUT_SECONDS", "300")
    with pytest.raises(SettingsError, match="LULL_LLM_TIMEOUT_SECONDS .300. must be at most 150"):
        load_settings()
    monkeypatch.setenv("LULL_LLM_TIMEOUT_SECONDS", "150")
    assert load_settings().llm_timeout_seconds == 150
    monkeypatch.setenv("LULL_OUTAGE_WINDOW_MINUTES", "30")  # an attempt may run 30 min
    monkeypatch.setenv("LULL_LLM_TIMEOUT_SECONDS", "300")
    assert load_settings().llm_timeout_seconds == 300
