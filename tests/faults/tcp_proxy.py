"""A TCP proxy in front of a real server that a test can cut and restore: the server looks
down (connections dropped, new ones refused) without touching the shared server.

Postgres here listens on a Unix socket (embedded) or TCP (LULL_DATABASE_URL); the proxy
listens on 127.0.0.1 either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import make_url

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class FaultProxy:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._server: asyncio.Server | None = None
        self._port = 0
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.cuts = 0
        # Frozen: connections stay open and nothing passes, as in a partition that drops
        # packets; what was sent meanwhile arrives once it heals (TCP retransmits it).
        self._flowing = asyncio.Event()
        self._flowing.set()
        # Added to every chunk's trip: a slow link or an overloaded server.
        self.latency = 0.0

    @property
    def frozen(self) -> bool:
        return not self._flowing.is_set()

    @frozen.setter
    def frozen(self, value: bool) -> None:
        if value:
            self._flowing.clear()
        else:
            self._flowing.set()

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, as a crashed server would."""
        self.cuts += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    def restore_after(self, seconds: float) -> asyncio.Task[None]:
        async def later() -> None:
            await asyncio.sleep(seconds)
            await self.restore()

        return asyncio.create_task(later())

    async def stop(self) -> None:
        await self.cut()
        for task in list(self._pipes):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._connect()
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                if self.latency:
                    await asyncio.sleep(self.latency)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.transport.abort()


async def postgres_proxy(database_url: str) -> tuple[FaultProxy, str]:
    """A proxy in front of ``database_url``'s server; returns it and the URL through it."""
    url = make_url(database_url)
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        path = f"{socket_dir}/.s.PGSQL.{url.port or 5432}"
        proxy = FaultProxy(lambda: asyncio.open_unix_connection(path))
    else:
        host, port = url.host or "127.0.0.1", url.port or 5432
        proxy = FaultProxy(lambda: asyncio.open_connection(host, port))
    await proxy.start()
    through = url.set(host="127.0.0.1", port=proxy.port, query={})
    return proxy, through.render_as_string(hide_password=False)


async def tcp_proxy(host: str, port: int) -> FaultProxy:
    """A proxy in front of a TCP server (Temporal's gRPC port, the MTProto server)."""
    proxy = FaultProxy(lambda: asyncio.open_connection(host, port))
    return await proxy.start()
