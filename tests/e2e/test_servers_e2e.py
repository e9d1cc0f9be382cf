"""Configured servers are used as they are; unreachable ones give a clear error."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from testkit.keys import TEST_CHAT_HASH_KEY
from tests.e2e.helpers import ROOT, free_port, lull_command, lull_env, new_data_dir
from workflows.ids import chat_reference

pytestmark = pytest.mark.e2e

SCRIPT = "\n".join(
    json.dumps(e)
    for e in [
        {"at": 0.0, "chat": 9, "user": 1, "type": "message", "id": 1, "text": "one"},
        {"at": 0.1, "chat": 9, "user": 1, "type": "message", "id": 2, "text": "two"},
    ]
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = new_data_dir()
    (path / "s.jsonl").write_text(SCRIPT)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def replay(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lull_command("replay", str(data_dir / "s.jsonl")),
        cwd=ROOT,
        env=lull_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_configured_servers_are_used_instead_of_embedded_ones(
    data_dir: Path, dev_env: WorkflowEnvironment, database_url: str
) -> None:
    address = dev_env.client.service_client.config.target_host
    proc = replay(data_dir, LULL_TEMPORAL_ADDRESS=address, LULL_DATABASE_URL=database_url)
    assert proc.returncode == 0, proc.stderr
    (line,) = [json.loads(x) for x in proc.stdout.splitlines()]
    assert line["message_ids"] == [1, 2]
    # Nothing embedded was started: no Postgres data dir and no dev-server state.
    assert not (data_dir / "pg").exists()
    assert not (data_dir / "temporal.db").exists()
    # The workflow ran on the configured server.
    ref = chat_reference(TEST_CHAT_HASH_KEY.encode(), line["account"], 9, None)
    query = f"WorkflowId = 'conversation/{line['account']}/c-{ref}'"
    count = await dev_env.client.count_workflows(query)
    assert count.count == 1


def test_unreachable_temporal_is_a_clear_error(data_dir: Path, database_url: str) -> None:
    proc = replay(
        data_dir, LULL_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}", LULL_DATABASE_URL=database_url
    )
    assert proc.returncode == 1
    assert "Temporal at 127.0.0.1:" in proc.stderr and "unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_postgres_is_a_clear_error_without_credentials(data_dir: Path) -> None:
    url = f"postgresql+asyncpg://lull:s3cret@127.0.0.1:{free_port()}/lull"
    proc = replay(data_dir, LULL_DATABASE_URL=url, LULL_TEMPORAL_ADDRESS="127.0.0.1:1")
    assert proc.returncode == 1
    assert "Postgres at" in proc.stderr and "unreachable" in proc.stderr
    assert "s3cret" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_lone_worker_refuses_to_start_embedded_servers_it_would_orphan(data_dir: Path) -> None:
    proc = subprocess.run(
        lull_command("worker"),
        cwd=ROOT,
        env=lull_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "start `lull dev` first, or set LULL_DATABASE_URL" in proc.stderr
    assert not (data_dir / "pg").exists()


async def test_a_replay_closes_its_conversations_and_fails_when_a_burst_failed(
    data_dir: Path,
    dev_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import select
    from temporalio.client import WorkflowExecutionStatus

    from db.tables import account, burst, conversation
    from testkit.fake_llm import Answer, running_fake_openai

    address = dev_env.client.service_client.config.target_host
    async with running_fake_openai() as llm:
        llm.script.append(Answer(status=400, content="bad request"))
        proc = await asyncio.to_thread(
            replay,
            data_dir,
            LULL_TEMPORAL_ADDRESS=address,
            LULL_DATABASE_URL=database_url,
            LULL_LLM_BASE_URL=llm.base_url,
            LULL_LLM_API_KEY="k",
        )
    assert proc.returncode == 1, proc.stderr
    assert "failed: LLMRejected" in proc.stderr
    burst_key = next(w for w in proc.stderr.split() if w.startswith("b-"))
    async with sessionmaker() as session:
        key = (
            await session.execute(
                select(account.c.key)
                .join(conversation, conversation.c.account_id == account.c.id)
                .join(burst, burst.c.conversation_id == conversation.c.id)
                .where(burst.c.burst_key == burst_key)
            )
        ).scalar_one()
    ref = chat_reference(TEST_CHAT_HASH_KEY.encode(), key, 9, None)
    described = await dev_env.client.get_workflow_handle(f"conversation/{key}/c-{ref}").describe()
    assert described.status == WorkflowExecutionStatus.TERMINATED  # closed when it finished


async def test_a_replay_beside_lull_dev_joins_its_servers(data_dir: Path) -> None:
    from tests.e2e.helpers import Process

    env = lull_env(data_dir)
    dev = Process("dev", "dev", env, data_dir)
    await dev.start()
    try:
        for _ in range(300):  # until its Temporal answers
            probe = await asyncio.to_thread(
                subprocess.run,
                lull_command("conversations"),
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode == 0:
                break
            await asyncio.sleep(0.2)
        assert probe.returncode == 0, dev.tail()
        proc = await asyncio.to_thread(
            subprocess.run,
            lull_command("replay", str(data_dir / "s.jsonl")),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        (line,) = [json.loads(x) for x in proc.stdout.splitlines()]
        assert line["message_ids"] == [1, 2]
        listed = await asyncio.to_thread(
            subprocess.run,
            lull_command("conversations", "--account", line["account"]),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0 and listed.stdout == ""  # closed when it finished
    finally:
        assert await dev.signal(15) == 0, dev.tail()


def test_the_data_folder_and_the_files_lull_makes_are_the_operators_alone() -> None:
    path = new_data_dir()
    path.rmdir()  # let lull create it
    try:
        env = lull_env(path)
        env.pop("LULL_SECRET_KEY")  # the embedded stack makes and keeps its own
        for args in (("migrate",), ("secrets", "rotate")):
            proc = subprocess.run(
                lull_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
            )
            assert proc.returncode == 0, proc.stderr
        assert "0 stored credentials re-sealed with key 'dev'" in proc.stdout
        # Traversable for embedded Postgres's own OS user, listable by nobody else.
        assert path.stat().st_mode & 0o077 == 0o011
        assert (path / "secret.key").stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(path, ignore_errors=True)
