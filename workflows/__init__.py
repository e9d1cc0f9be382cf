"""Deterministic workflow code: no IO, no clocks, no settings. Only stdlib and temporalio."""
