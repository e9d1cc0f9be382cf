"""What a conversation is doing, as ops see it: the phase in the ``state`` query, the
run's current details in the UI, and the LullPhase search attribute."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import attributes


class PhaseBoard:
    """The run's phase. LullPhase is upserted only when its value changes: each upsert is
    a history event and a visibility write."""

    def __init__(self, phase: str, *, upsert: bool, steady: Callable[[], bool]) -> None:
        self.phase = phase
        self._upsert = upsert
        # Whether LullPhase is only "active" or "paused" (from lull-2026-12): asked at each
        # show, as a patch check must be asked where the run first needs it.
        self._steady = steady
        # The ingest starts a run with LullPhase set ("active"): no upsert is needed then.
        # A run started without it (an older ingest, stored histories) upserts it.
        self._shown: str | None = workflow.info().typed_search_attributes.get(attributes.PHASE)

    def visible(self, *, paused: bool) -> str:
        """Waiting while paused shows as "paused"."""
        if paused and self.phase in ("idle", "collecting"):
            return "paused"
        return self.phase

    def enter(self, phase: str, *, paused: bool, details: str | None = None) -> None:
        self.phase = phase
        self.show(paused=paused)
        if details is not None:
            workflow.set_current_details(details)

    def show(self, *, paused: bool) -> None:
        visible = self.visible(paused=paused)
        shown = (
            attributes.steady_phase(visible)
            if self._steady()
            else attributes.COARSE_PHASE.get(visible, visible)
        )
        if self._upsert and shown != self._shown:
            workflow.upsert_search_attributes([attributes.PHASE.value_set(shown)])
            self._shown = shown

    @staticmethod
    def collecting_details(buffered: int, due_at: datetime, rule: str) -> str:
        when = due_at.strftime("%H:%M:%S")
        return f"collecting {buffered} messages, flush at {when} UTC ({rule})"
