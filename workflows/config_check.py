"""A conversation's config checked against sane bounds when its run starts.

The config travels in the workflow input and across continue-as-new, so a bad value
(``inf`` from a typo, ``1e30``) would fail every workflow task of every conversation given
it, and fixing the variable would heal none of them. Settings refuse such values at
start-up; this is the workflow's own guard against any other sender (an older ingest, a
script): an out-of-range value is clamped into range and a non-number replaced by its
default, and the run says so instead of failing. Pure: safe in workflow code.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields, replace

from workflows.payloads import ConversationConfig

# One generate_reply attempt may run this long at least (longer with a longer outage
# window: steps.generate_reply). An LLM call must end well inside it, storing included,
# or Temporal times the attempt out while the call runs and a retry pays again.
GENERATE_ATTEMPT_SECONDS = 180.0
STORE_MARGIN_SECONDS = 30.0

DAY = 24 * 3600.0
# A pause (human handoff) lasts at most this long; longer means "until resumed".
MAX_PAUSE_SECONDS = 366 * DAY

# Field → (lowest, highest) allowed value. Settings use the same upper bounds.
CONFIG_BOUNDS_LOW: dict[str, float] = {
    "debounce_seconds": 0.05,
    "max_burst_messages": 1,
    "idle_close_seconds": 1.0,
    "max_wait_seconds": 0.05,
    "max_burst_chars": 1,
    "typing_window_seconds": 0.0,
    "max_history_events": 100,
    "outage_window_seconds": 1.0,
}
CONFIG_BOUNDS: dict[str, float] = {
    "debounce_seconds": 3600.0,
    "max_burst_messages": 1000,
    "idle_close_seconds": 30 * DAY,
    "max_wait_seconds": DAY,
    "max_burst_chars": 1_000_000,
    "typing_window_seconds": 600.0,
    "max_history_events": 50_000,
    "outage_window_seconds": 7 * DAY,
}
# What stands in for a value that is not a number at all (nan, or the wrong type).
DEFAULTS: dict[str, float] = {
    **{f.name: f.default for f in fields(ConversationConfig) if f.default is not MISSING},  # type: ignore[misc]
    "debounce_seconds": 5.0,
    "max_burst_messages": 10,
    "idle_close_seconds": 900.0,
}


def checked_config(config: ConversationConfig) -> tuple[ConversationConfig, list[str]]:
    """``config`` with every bounded value inside its bounds, and what was changed."""
    changes: dict[str, object] = {}
    problems: list[str] = []
    for name, high in CONFIG_BOUNDS.items():
        value = getattr(config, name)
        fixed = _bounded(value, CONFIG_BOUNDS_LOW[name], high, DEFAULTS[name])
        if fixed is not value:
            changes[name] = fixed
            problems.append(f"{name}={value!r} is out of bounds; using {fixed!r}")
    windows: dict[str, object] = dict(config.typing_windows)
    for action, value in config.typing_windows.items():
        high = CONFIG_BOUNDS["typing_window_seconds"]
        fixed = _bounded(value, 0.0, high, DEFAULTS["typing_window_seconds"])
        if fixed is not value:
            windows[action] = fixed
            changes["typing_windows"] = windows
            problems.append(f"typing_windows[{action!r}]={value!r} out of bounds; using {fixed!r}")
    if not changes:
        return config, []
    return replace(config, **changes), problems  # type: ignore[arg-type]


def _bounded(value: object, low: float, high: float, default: float) -> object:
    """``value`` itself when it is a number within bounds, else the nearest bound (or the
    default, for something that is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return default
    if low <= value <= high:
        return value
    return type(default)(min(max(value, low), high))


def pause_seconds_ok(minutes: float | None) -> bool:
    """Whether a pause's length is one a workflow can time: none, or finite, positive and
    at most ``MAX_PAUSE_SECONDS``."""
    if minutes is None:
        return True
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        return False
    return math.isfinite(minutes) and 0 < minutes * 60 <= MAX_PAUSE_SECONDS
