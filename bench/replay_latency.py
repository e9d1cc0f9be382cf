"""Quiet-period end → reply sent, measured through `lull replay` (issue 2's figure).

Generates BURSTS bursts of 1-4 messages spread over several chats, runs the real CLI on the
embedded stack (or the configured servers) and prints a report. Not a test: numbers vary
with the machine, so they are reported, never asserted.

    python -m bench.replay_latency [--bursts 20] [--debounce 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.stats import percentile


def make_script(bursts: int, debounce: float, seed: int = 7) -> list[dict]:  # type: ignore[type-arg]
    rng = random.Random(seed)
    events = []
    chats = 4
    next_at = dict.fromkeys(range(1, chats + 1), 0.2)
    next_id = dict.fromkeys(range(1, chats + 1), 1)
    for n in range(bursts):
        chat = n % chats + 1
        at = next_at[chat]
        for _ in range(rng.randint(1, 4)):
            events.append(
                {
                    "at": round(at, 3),
                    "chat": chat,
                    "user": 100 + chat,
                    "type": "message",
                    "id": next_id[chat],
                    "text": f"m{next_id[chat]}",
                }
            )
            next_id[chat] += 1
            at += rng.uniform(0.05, debounce * 0.6)
        next_at[chat] = at + debounce + 1.0  # a clear lull before the chat's next burst
    return events


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    p50, p90 = statistics.median(ms), percentile(ms, 0.9)
    return f"median {p50:.0f} ms, p90 {p90:.0f} ms, max {max(ms):.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--debounce", type=float, default=0.5)
    args = parser.parse_args()
    events = make_script(args.bursts, args.debounce)
    last_at = {}
    for e in events:
        last_at[(e["chat"], e["id"])] = e["at"]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(e) for e in events))
    env = dict(os.environ, LULL_DEBOUNCE_SECONDS=str(args.debounce), PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "replay", f.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    Path(f.name).unlink()
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    to_send, to_flush = [], []
    for r in rows:
        quiet_end = max(last_at[(r["chat"], i)] for i in r["message_ids"]) + args.debounce
        to_send.append(r["sent_at"] - quiet_end)
        to_flush.append(r["flushed_at"] - quiet_end)
    print(f"bursts: {len(rows)} (expected {args.bursts}), debounce {args.debounce} s")
    print(f"quiet-period end -> flush : {summary(to_flush)}")
    print(f"quiet-period end -> reply : {summary(to_send)}")
    return 0 if len(rows) == args.bursts else 1


if __name__ == "__main__":
    sys.exit(main())
