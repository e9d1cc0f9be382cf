"""`/healthz` and `/readyz` for a listener pod, on a small asyncio HTTP server (no framework).

- ``/healthz``: the process is alive and its event loop answers.
- ``/readyz``: every readiness check passes (Telegram connected, Temporal and Postgres
  reachable, no accepted update stuck retrying). 503 with the failing checks otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

log = logging.getLogger("lull.health")

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_SECONDS = 2.0


class HealthServer:
    def __init__(self, checks: Mapping[str, Check], *, host: str = "0.0.0.0", port: int) -> None:
        self._checks = checks
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> HealthServer:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("health endpoints on port %s", self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def readiness(self) -> dict[str, bool]:
        async def run(check: Check) -> bool:
            try:
                return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            except Exception:
                return False

        names = list(self._checks)
        results = await asyncio.gather(*(run(self._checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            body: dict[str, object]
            if path == "/healthz":
                status, body = 200, {"alive": True}
            elif path == "/readyz":
                checks = await self.readiness()
                status, body = (200 if all(checks.values()) else 503), dict(checks)
            else:
                status, body = 404, {"error": "not found"}
            payload = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
