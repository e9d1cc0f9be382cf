"""What supersedes throw away, counted as metrics (app/telemetry.py serves them)."""

from __future__ import annotations

from decimal import Decimal

from temporalio import activity


def count_discarded(tokens: int, cost: Decimal, *, how: str) -> None:
    """The spend a supersede threw away, as metrics (``how``: "cancelled" mid-call, or
    "discarded" once made); cost in millionths of the configured price unit."""
    meter = activity.metric_meter()
    labels = {"how": how}
    meter.create_counter("lull_discarded_tokens", "LLM tokens of superseded bursts").add(
        tokens, labels
    )
    meter.create_counter(
        "lull_discarded_cost_micros", "LLM cost of superseded bursts, in millionths"
    ).add(int(cost * 1_000_000), labels)
