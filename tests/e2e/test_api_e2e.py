"""`lull users create` and `lull api` as real processes: the admin API over a real uvicorn
socket, on the test session's Postgres and dev server."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from testkit.servers import free_port, task_queue
from tests.e2e.helpers import ROOT, lull_command, lull_env, new_data_dir

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"


async def start(command: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *lull_command(command),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def up(http: httpx.AsyncClient, within: float = 30) -> httpx.Response:
    """GET /health once the process listens."""
    for _ in range(int(within * 10)):
        try:
            return await http.get("/health")
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens after {within} s")


async def test_the_api_serves_over_uvicorn_from_the_first_admin_to_a_bot(
    dev_env: WorkflowEnvironment, database_url: str
) -> None:
    port = free_port()
    env = lull_env(
        new_data_dir(),
        LULL_DATABASE_URL=database_url,
        LULL_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        LULL_TASK_QUEUE=task_queue(),
        LULL_API_PORT=str(port),
        # Plain HTTP in this test: a Secure cookie would not be sent back.
        LULL_API_COOKIE_SECURE="false",
    )
    name = f"root-{uuid.uuid4().hex[:6]}"

    def users(*args: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            lull_command("users", "create", *args, "--password-stdin"),
            cwd=ROOT,
            env=env,
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = await asyncio.to_thread(users, name, password=PASSWORD)
    assert made.returncode == 0 and f"user {name} (admin) created" in made.stdout, made.stderr
    again = await asyncio.to_thread(users, name, password=PASSWORD)
    assert again.returncode == 2 and "exists" in again.stderr
    short = await asyncio.to_thread(users, "shorty", password="short")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr

    proc = await start("api", env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await up(http)).status_code == 200
            assert (await http.get("/health/db")).json() == {"status": "ok"}
            assert (await http.get("/health/temporal")).json() == {"status": "ok"}
            spec = (await http.get("/openapi.json")).json()
            assert {"/bots", "/chats/{chat_id}/messages", "/auth/login"} <= set(spec["paths"])
            assert (await http.get("/docs")).status_code == 200

            assert (await http.get("/bots")).status_code == 401
            login = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
            assert login.status_code == 200, login.text
            key = f"e2e-{uuid.uuid4().hex[:6]}"
            made_bot = await http.post("/bots", json={"key": key, "name": "Salon"})
            assert made_bot.status_code == 201
            assert key in [b["key"] for b in (await http.get("/bots")).json()]
            assert (await http.post("/auth/logout")).status_code == 204
            assert (await http.get("/bots")).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert f"Lull admin API on http://127.0.0.1:{port}" in out.decode()
    assert PASSWORD not in out.decode()


async def test_a_worker_answers_the_same_health_paths(
    dev_env: WorkflowEnvironment, database_url: str
) -> None:
    port = free_port()
    env = lull_env(
        new_data_dir(),
        LULL_DATABASE_URL=database_url,
        LULL_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        LULL_TASK_QUEUE=task_queue(),
        LULL_WORKER_HEALTH_PORT=str(port),
    )
    proc = await start("worker", env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await up(http)).status_code == 200
            assert (await http.get("/health/db")).json() == {"status": "ok"}
            assert (await http.get("/health/temporal")).json() == {"status": "ok"}
            assert (await http.get("/readyz")).json() == {"temporal": True, "postgres": True}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()[-2000:]
