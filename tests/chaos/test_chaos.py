"""The short chaos run of CI: 35 users, every fault kind once, then everything must drain
with nothing lost, doubled, in doubt or unexpected. `make chaos` runs it for 20 minutes."""

from __future__ import annotations

import pytest

from tests.chaos.run import run_chaos

pytestmark = pytest.mark.e2e


async def test_under_faults_every_message_is_answered_exactly_once() -> None:
    result = await run_chaos(
        load_seconds=80, users=35, seed=20261122, drain_seconds=90, every=(1, 2)
    )
    print(result.render())
    # Every kind of fault really hit (a kill "mid-call" with no call in flight did not).
    assert result.faults.kinds_not_hit == [], result.render()
    assert result.report.accepted > 300
    # Users write while their replies are made: supersedes happen, and none leaks a reply.
    assert result.report.superseded > 0, result.render()
    assert result.report.clean, result.render()
