"""`/healthz` and `/readyz` for a listener or worker pod, on a small asyncio HTTP server
(no framework).

- ``/healthz`` (or ``/health``): the process is alive and its event loop answers.
- ``/readyz``: every readiness check passes (Telegram connected, Temporal and Postgres
  reachable, no accepted update stuck retrying). 503 with the failing checks otherwise.
- ``/health/db``, ``/health/temporal`` (any check by name): that one check, as the admin
  API answers them.

Probes can come often and from anywhere the port is reachable, so the checks run at most
once a ``CACHE_SECONDS`` (requests meanwhile share the result, or the run in flight) and
a request line longer than ``MAX_REQUEST_LINE`` gets 431, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType

log = logging.getLogger("lull.health")

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_SECONDS = 2.0
CACHE_SECONDS = 1.0
MAX_REQUEST_LINE = 4096
# /health/<name> names a check as the admin API does.
ALIASES = {"db": "postgres"}


class HealthServer:
    def __init__(self, checks: Mapping[str, Check], *, host: str = "127.0.0.1", port: int) -> None:
        self._checks = dict(checks)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        # The last readiness run (or the one in flight) and when it started.
        self._last: asyncio.Future[dict[str, bool]] | None = None
        self._last_at = 0.0
        self.check_runs = 0

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> HealthServer:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_REQUEST_LINE
        )
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

    @property
    def check_names(self) -> set[str]:
        return set(self._checks)

    def add_checks(self, checks: Mapping[str, Check]) -> None:
        """Checks of a part that came up (a fleet's account), until ``remove_checks``."""
        self._checks.update(checks)

    def remove_checks(self, names: Iterable[str]) -> None:
        for name in names:
            self._checks.pop(name, None)

    async def readiness(self) -> dict[str, bool]:
        """The checks' results, run at most once a ``CACHE_SECONDS``."""
        now = asyncio.get_running_loop().time()
        if self._last is None or now - self._last_at >= CACHE_SECONDS:
            self._last_at = now
            self._last = asyncio.ensure_future(self._run_checks())
        return dict(await asyncio.shield(self._last))

    async def _run_checks(self) -> dict[str, bool]:
        self.check_runs += 1

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
            try:
                request_line = await asyncio.wait_for(reader.readline(), 5)
            except ValueError:  # longer than the reader's limit
                request_line = b""
                path = None
            else:
                parts = request_line.decode("latin-1").split()
                path = parts[1] if len(parts) >= 2 else ""
            body: dict[str, object]
            if path is None:
                status, body = 431, {"error": "request line too long"}
            elif path == "/healthz":
                status, body = 200, {"alive": True}
            elif path == "/health":
                status, body = 200, {"status": "ok"}
            elif path.startswith("/health/"):
                # One dependency, in the admin API's words: /health/db, /health/temporal.
                name = path.removeprefix("/health/")
                name = ALIASES.get(name, name)
                if name not in self._checks:
                    status, body = 404, {"error": "not found"}
                else:
                    ok = (await self.readiness())[name]
                    status, body = (
                        (200, {"status": "ok"}) if ok else (503, {"status": "unavailable"})
                    )
            elif path == "/readyz":
                checks = await self.readiness()
                status, body = (200 if all(checks.values()) else 503), dict(checks)
            else:
                status, body = 404, {"error": "not found"}
            payload = json.dumps(body).encode()
            reason = {
                200: "OK",
                404: "Not Found",
                431: "Request Header Fields Too Large",
                503: "Service Unavailable",
            }[status]
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
