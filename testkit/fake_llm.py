"""A local HTTP server speaking the chat-completions API, for the real `openai` SDK.

It models the provider's documented behaviour at the edge: 200 with usage, 429 with
Retry-After, 5xx, 4xx error bodies, and answers slower than the client's timeout.
Each request takes the next scripted answer; with none left it answers 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int = 200
    content: str | None = None  # None: echo the last user message
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.requests: list[dict] = []  # type: ignore[type-arg]
        self.port = 0
        # An outage: while set, every request gets this answer (the script waits).
        self.failing: Answer | None = None
        # Latency of a normal answer, and how many requests are being answered right now.
        self.latency = 0.0
        self.in_flight = 0
        self.statuses: list[int] = []
        # The last user message of every request answered 200: what was paid for.
        self.paid_for: list[str] = []
        # Of those, answers slower than the client's timeout: the client had given up and
        # retries, yet a provider bills such a call.
        self.client_timeout: float | None = None
        self.abandoned = 0
        # Each 200: (what was paid for, the calling process's pid, loop time, abandoned).
        # A process killed just after an answer never stored it, and its retry pays again.
        self.answers: list[tuple[str, int | None, float, bool]] = []
        # Which process a client's TCP port belongs to (set by a test that knows).
        self.pid_of_port: Callable[[int], int | None] = lambda port: None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        pid = self.pid_of_port(peer[1]) if peer else None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {
                    k.lower(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = json.loads(body or b"{}")
                self.requests.append(request)
                answer = self.failing or (
                    self.script.pop(0) if self.script else Answer(delay=self.latency)
                )
                self.in_flight += 1
                try:
                    if answer.delay:
                        await asyncio.sleep(answer.delay)
                finally:
                    self.in_flight -= 1
                status, payload = self._respond(answer, request, headers)
                late = self.client_timeout is not None and answer.delay >= self.client_timeout
                if status == 200 and late:
                    self.abandoned += 1
                if status == 200:
                    content = str(request.get("messages", [{}])[-1].get("content", ""))
                    now = asyncio.get_running_loop().time()
                    self.answers.append((content, pid, now, late))
                self.statuses.append(status)
                data = json.dumps(payload).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(data)}\r\n{extra}\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _respond(
        self,
        answer: Answer,
        request: dict,
        headers: dict[str, str],  # type: ignore[type-arg]
    ) -> tuple[int, dict]:  # type: ignore[type-arg]
        if answer.status == 401:
            # As the real API does: the error names the key it was given.
            key = headers.get("authorization", "").removeprefix("Bearer ")
            error = {"message": f"Incorrect API key provided: {key}", "type": "invalid_request"}
            return 401, {"error": error}
        if answer.status != 200:
            failure: dict[str, object] = {
                "message": f"fake error {answer.status}",
                "type": "fake",
                "code": None,
            }
            return answer.status, {"error": failure}
        messages = request.get("messages", [])
        if messages:
            self.paid_for.append(str(messages[-1].get("content", "")))
        text = answer.content if answer.content is not None else f"re: {messages[-1]['content']}"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return 200, {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": request.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt_tokens + len(text.split()),
            },
        }


@contextlib.asynccontextmanager
async def running_fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = await asyncio.start_server(fake._handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake
        server.close()
