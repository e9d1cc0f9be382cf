"""`lull run`: the console chat on the embedded stack, and a clean Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT, lull_command, lull_env, new_data_dir

pytestmark = pytest.mark.e2e


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = new_data_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_piped_lines_get_one_reply_for_the_burst(data_dir: Path) -> None:
    env = lull_env(data_dir)
    proc = subprocess.run(
        lull_command("run"),
        cwd=ROOT,
        env=env,
        input="hi\ncan you\n\nbook me a haircut\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Temporal UI : http://127.0.0.1:" in proc.stdout
    assert "LLM         : echo" in proc.stdout
    replies = [ln for ln in proc.stdout.splitlines() if "lull> " in ln]
    assert len(replies) == 1
    assert replies[0].endswith("[echo: 3 messages] hi can you book me a haircut")
    assert not port_in_use(int(env["LULL_TEMPORAL_PORT"]))
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_ctrl_c_stops_every_process_it_started(data_dir: Path) -> None:
    env = lull_env(data_dir)
    proc = subprocess.Popen(
        lull_command("run"),
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = int(env["LULL_TEMPORAL_PORT"])
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    banner = ""
    while "Type messages" not in banner and time.monotonic() < deadline:
        banner += proc.stdout.readline()
    assert "Type messages" in banner
    assert port_in_use(port)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert not port_in_use(port)
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert proc.stdin is not None
    proc.stdin.close()
