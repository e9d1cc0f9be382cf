"""The health server: loopback unless told, checks run at most once a second however
often probed, and an oversized request gets a clear 431 rather than a traceback."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from app.health import HealthServer


async def request(port: int, line: bytes) -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line + b"\r\nHost: x\r\n\r\n")
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_readiness_checks_run_once_however_many_probes_arrive() -> None:
    runs = 0

    async def slow_ok() -> bool:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.2)
        return True

    async with HealthServer({"postgres": slow_ok}, port=0) as health:
        answers = await asyncio.gather(
            *(request(health.port, b"GET /readyz HTTP/1.1") for _ in range(50))
        )
        assert {a for a, _ in answers} == {200}
        assert runs == 1
        health._last_at -= 5  # the cached result is older than a second now
        assert (await request(health.port, b"GET /readyz HTTP/1.1"))[0] == 200
        assert runs == 2


async def test_it_listens_on_loopback_unless_told() -> None:
    async with HealthServer({}, port=0) as health:
        assert health._server is not None
        assert health._server.sockets[0].getsockname()[0] == "127.0.0.1"


async def test_an_oversized_request_line_gets_431_and_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with HealthServer({}, port=0) as health:
        status, body = await request(health.port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1")
        assert status == 431 and "too long" in str(body)
        assert (await request(health.port, b"GET /healthz HTTP/1.1"))[0] == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_each_dependency_answers_on_its_own_path_as_the_admin_api_does() -> None:
    temporal_up = True

    async def temporal() -> bool:
        return temporal_up

    async def postgres() -> bool:
        raise ConnectionError("down")

    async with HealthServer({"temporal": temporal, "postgres": postgres}, port=0) as health:
        assert await request(health.port, b"GET /health HTTP/1.1") == (200, {"status": "ok"})
        assert await request(health.port, b"GET /health/temporal HTTP/1.1") == (
            200,
            {"status": "ok"},
        )
        assert await request(health.port, b"GET /health/db HTTP/1.1") == (
            503,
            {"status": "unavailable"},
        )
        assert (await request(health.port, b"GET /health/redis HTTP/1.1"))[0] == 404
        temporal_up = False
        health._last_at -= 5
        assert (await request(health.port, b"GET /health/temporal HTTP/1.1"))[0] == 503
