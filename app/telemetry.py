"""Prometheus metrics of a process, on LULL_METRICS_PORT: the Temporal SDK's own (task
latencies, pollers, activity outcomes) and Lull's counters, which workflows and
activities emit through the SDK's metric meter (replay-safe in workflow code). Labels
never carry a chat, a user or a burst: only outcomes and rules."""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from app.settings import Settings

_runtime: Runtime | None = None


def runtime_for(settings: Settings) -> Runtime | None:
    """The process's SDK runtime with a Prometheus endpoint, or None (the SDK default)
    without LULL_METRICS_PORT. One per process: the endpoint binds once."""
    global _runtime
    if settings.metrics_port is None:
        return None
    if _runtime is None:
        address = f"{settings.health_host}:{settings.metrics_port}"
        _runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(address)))
    return _runtime
