"""Configured servers are used as they are; unreachable ones give a clear error."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.e2e.helpers import ROOT, free_port, lull_command, lull_env, new_data_dir

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
    query = f"WorkflowId = 'conversation/{line['account']}/9/~'"
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
