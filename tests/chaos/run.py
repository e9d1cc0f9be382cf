"""Run the chaos suite: load, faults, drain, check.

python -m tests.chaos.run --minutes 20      # `make chaos`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from db.engine import make_engine, make_sessionmaker
from tests.chaos import faults
from tests.chaos.checker import Report, check
from tests.chaos.cluster import Cluster
from tests.chaos.load import Accepted, run_users
from tests.e2e.helpers import ROOT, lull_command


@dataclass
class ChaosResult:
    report: Report
    faults: faults.FaultLog
    seconds: float
    restarts: dict[str, int]
    kept: Path | None = None

    def render(self) -> str:
        lines = [
            f"chaos run: {self.seconds:.0f} s, {len(self.faults)} faults, "
            f"process starts {self.restarts}",
            "",
            self.report.table(),
            "",
            "faults:",
            *(f"  {f}" for f in self.faults),
            f"fault kinds that hit: {len(self.faults.hit)} of {len(faults.ALL)}"
            + (f"; never hit: {self.faults.kinds_not_hit}" if self.faults.kinds_not_hit else ""),
        ]
        if self.kept is not None:
            lines.append(f"logs kept in {self.kept}")
        return "\n".join(lines)


async def run_chaos(
    *,
    load_seconds: float,
    users: int,
    seed: int,
    drain_seconds: float,
    every: tuple[float, float],
    lull: tuple[float, float] = (0.5, 4.0),
    quiet_seconds: float = 20.0,
) -> ChaosResult:
    started = time.monotonic()
    rng = random.Random(seed)
    root = ROOT / ".lull" / f"chaos-{uuid.uuid4().hex[:8]}"
    cluster = Cluster(root, users=users)
    accepted, fault_log = Accepted(), faults.FaultLog()
    try:
        await cluster.start()
        await _until_listening(cluster)
        faults_done = asyncio.Event()

        async def inject_faults() -> None:
            try:
                await faults.inject(
                    cluster,
                    random.Random(rng.random()),
                    seconds=load_seconds,
                    every=every,
                    log=fault_log,
                )
            finally:
                faults_done.set()

        await asyncio.gather(
            run_users(
                cluster,
                accepted,
                seconds=load_seconds,
                rng=random.Random(rng.random()),
                lull=lull,
                until_also=faults_done,
            ),
            inject_faults(),
        )
        engine = make_engine(cluster.database_url, pool_size=2)
        try:
            sessionmaker = make_sessionmaker(engine)
            # The README's two ways to pay twice (a worker killed holding a call, a call
            # slower than the LLM timeout) are told apart per answer by the checker.
            allowed = 0
            expect_failed = fault_log.fails_bursts
            report = await _drain(
                cluster, accepted, sessionmaker, drain_seconds, allowed, expect_failed
            )
            retried: frozenset[str] = frozenset()
            if expect_failed and any(" failed: " in line for line in report.unexpected):
                # What an operator does after such an outage.
                retried = await _retry_all_failed(cluster)
                report = await _drain(
                    cluster, accepted, sessionmaker, drain_seconds, allowed, False, retried
                )
            if report.clean:
                # A late duplicate (a retried send, a re-run burst) would land now.
                await asyncio.sleep(quiet_seconds)
            # The final check asks Temporal too, clean or not: a run that failed says
            # what its unfinished conversations wait on.
            temporal = await Client.connect(f"127.0.0.1:{cluster.temporal_port}")
            report = await check(
                cluster,
                accepted,
                sessionmaker,
                paid_twice_allowed=allowed,
                temporal=temporal,
                retried=retried,
            )
        finally:
            await engine.dispose()
        restarts = {p.name: p.starts for p in cluster.processes}
    finally:
        await cluster.stop()
    result = ChaosResult(report, fault_log, time.monotonic() - started, restarts)
    if report.clean:
        shutil.rmtree(root, ignore_errors=True)
    else:
        # The processes' logs and Temporal's database, for the post-mortem.
        result.kept = root
    return result


async def _until_listening(cluster: Cluster) -> None:
    """The listeners have connected when Telegram has seen each ask for its update state."""
    from tests.chaos.cluster import BOT, OWNER

    for _ in range(600):
        asked = {user for user, kind in cluster.telegram.requests if kind == "GetStateRequest"}
        if {BOT, OWNER} <= asked:
            return
        await asyncio.sleep(0.1)
    tails = "\n".join(p.tail() for p in cluster.processes if "listener" in p.name)
    raise AssertionError(f"a listener never connected:\n{tails}")


async def _drain(  # type: ignore[no-untyped-def]
    cluster,
    accepted,
    sessionmaker,
    seconds: float,
    allowed: int,
    expect_failed: bool,
    retried: frozenset[str] = frozenset(),
) -> Report:
    """Check every 2 s until clean (or only failed bursts are left, when a fault meant to
    fail some), or until ``seconds`` ran out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def checked() -> Report:
        return await check(
            cluster, accepted, sessionmaker, paid_twice_allowed=allowed, retried=retried
        )

    seen: list[tuple[int, int, int]] = []
    while True:
        try:
            report = await checked()
        except OSError:  # Postgres still coming back
            report = None
        if report is not None:
            seen.append((len(report.lost), len(report.unexpected), report.bursts_sent))
        # With bursts failed on purpose: settled once nothing is in progress and nothing
        # has changed for three checks (the failed ones wait for ops).
        still = len(seen) >= 3 and len(set(seen[-3:])) == 1
        settled = report is not None and (
            report.clean or (expect_failed and not report.in_doubt and still)
        )
        if report is not None and (settled or loop.time() >= deadline):
            return report
        if loop.time() >= deadline:
            return await checked()
        await asyncio.sleep(2)


async def _retry_all_failed(cluster: Cluster) -> frozenset[str]:
    """`lull retry --all-failed` for the account; the bursts it retried."""
    proc = await asyncio.create_subprocess_exec(
        *lull_command("retry", "--all-failed", "--account", cluster.account_key),
        cwd=ROOT,
        env=cluster.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 3600)  # about 0.25 s a burst
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    # A burst whose send was never answered, long ago, fails again as SendInDoubt: it may
    # be on screen already, and is left to the operator (the checker sees what users saw).
    refused = [x for x in lines if x["status"] == "failed" and "SendInDoubt" not in x["detail"]]
    assert proc.returncode in (0, 1) and not refused, f"lull retry --all-failed: {err.decode()}"
    return frozenset(line["burst_key"] for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"chaos: {args.minutes:g} min of load and faults, {args.users} users, seed {args.seed}")
    result = asyncio.run(
        run_chaos(
            load_seconds=args.minutes * 60,
            users=args.users,
            seed=args.seed,
            drain_seconds=180,
            every=(8, 20),
            lull=(5, 40),
            quiet_seconds=60,
        )
    )
    print(result.render())
    return 0 if result.report.clean and not result.faults.kinds_not_hit else 1


if __name__ == "__main__":
    sys.exit(main())
