from __future__ import annotations

import subprocess
import sys

import pytest

from settings import SettingsError, load_settings


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
