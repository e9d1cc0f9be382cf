"""A class of activities lists its own, so a worker registers them without a hand-kept list."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


class ActivityHost:
    """Activities as methods of a class whose clients the hosting process injects."""

    def activities(self) -> list[Callable[..., Any]]:
        """This instance's ``@activity.defn`` methods, bound, by name."""
        return [
            getattr(self, name)
            for name, member in inspect.getmembers(type(self), inspect.isfunction)
            if hasattr(member, "__temporal_activity_definition")
        ]
