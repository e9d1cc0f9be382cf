"""docs/settings.md documents exactly the settings the Settings model reads."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import ENV_PREFIX, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def documented() -> set[str]:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    first_cells = [row.split("|")[1] for row in rows]
    return {name for cell in first_cells for name in re.findall(r"`(LULL_[A-Z0-9_]+)`", cell)}


def read_by_settings() -> set[str]:
    return {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}


def test_every_setting_is_documented_and_nothing_else_is() -> None:
    assert read_by_settings() - documented() == set(), "settings missing from docs/settings.md"
    assert documented() - read_by_settings() == set(), "docs/settings.md names unknown settings"
