"""`lull api`: the admin API on uvicorn, over the process's Postgres and Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from api.app import create_app
from api.context import ApiContext, ApiOptions
from app.settings import Settings
from app.wiring import Runtime, secret_box

log = logging.getLogger("lull.api")


class _Server(uvicorn.Server):
    """Signals are Lull's (``stop_on_signals``), not uvicorn's: it would take SIGTERM
    from the process's handler and raise it again once stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def api_options(settings: Settings, *, search_attributes: bool) -> ApiOptions:
    secure = settings.api_cookie_secure
    return ApiOptions(
        task_queue=settings.task_queue,
        outage_window_seconds=settings.outage_window_minutes * 60,
        session_hours=settings.api_session_hours,
        # Plain HTTP on the embedded dev stack; HTTPS (behind a proxy) anywhere else.
        cookie_secure=(not settings.dev_mode) if secure is None else secure,
        requests_per_minute=settings.api_requests_per_minute,
        ip_requests_per_minute=settings.api_ip_requests_per_minute,
        logins_per_minute=settings.api_logins_per_minute,
        search_attributes=search_attributes,
    )


def build_context(rt: Runtime) -> ApiContext:
    return ApiContext(
        sessionmaker=rt.sessionmaker,
        temporal=rt.client,
        box=secret_box(rt.settings),
        options=api_options(rt.settings, search_attributes=rt.search_attributes),
    )


async def serve(rt: Runtime, stop: asyncio.Event) -> int:
    s = rt.settings
    config = uvicorn.Config(
        create_app(build_context(rt)),
        host=s.api_host,
        port=s.api_port,
        log_config=None,  # Lull's logging, set up by cli.py
        access_log=False,
        # Client IPs (rate limits, audit) from X-Forwarded-For only behind these proxies.
        forwarded_allow_ips=s.api_forwarded_allow_ips,
        proxy_headers=True,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving
    stopped.cancel()
    if not server.started:
        log.error("the API could not listen on %s:%s", s.api_host, s.api_port)
        return 1
    return 0
