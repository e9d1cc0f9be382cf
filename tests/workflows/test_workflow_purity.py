"""Workflow modules read no clock, randomness, environment or IO, checked in their source.

Production workers share workflow modules across runs (settings.workflow_modules), so the
sandbox there no longer traps a call such as ``datetime.now()`` at run time. The workflow
tests and the replay test still run the full per-run sandbox; this scan catches the same
mistakes without needing a test to reach the line.
"""

from __future__ import annotations

import ast

from tests.conftest import ROOT

# Reached as attributes: nondeterministic however they are imported.
FORBIDDEN_CALLS = {
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "time.time",
    "time.monotonic",
    "time.perf_counter",
    "time.sleep",
    "asyncio.sleep",
    "os.getenv",
    "os.environ",
    "uuid.uuid1",
    "uuid.uuid4",
}
FORBIDDEN_BUILTINS = {"open", "print", "input"}
# IO, clocks and configuration: workflows get these through activities and their input.
FORBIDDEN_MODULES = {
    "random",
    "secrets",
    "time",
    "os",
    "socket",
    "threading",
    "subprocess",
    "settings",
    "sqlalchemy",
    "asyncpg",
    "openai",
    "telethon",
    "httpx",
    "db",
    "llm",
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and dotted(node) in FORBIDDEN_CALLS:
            found.append(f"{where}: {dotted(node)}")
        elif isinstance(node, ast.Call) and dotted(node.func) in FORBIDDEN_BUILTINS:
            found.append(f"{where}: {dotted(node.func)}()")
        elif isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if is_forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and is_forbidden(node.module or ""):
            found.append(f"{where}: from {node.module} import ...")
    return found


def is_forbidden(module: str) -> bool:
    return module.split(".")[0] in FORBIDDEN_MODULES


def test_the_scan_flags_each_kind_of_nondeterminism() -> None:
    sample = (
        "import random\nfrom db import queries\nfrom datetime import datetime\n"
        "x = datetime.now()\nopen('f')\ny = uuid.uuid4()\n"
    )
    assert len(violations(sample)) == 5
    assert violations("from datetime import timedelta\nx = workflow.now()\n") == []


def test_workflow_modules_read_no_clock_randomness_environment_or_io() -> None:
    modules = sorted((ROOT / "workflows").glob("*.py"))
    assert len(modules) >= 8
    found = {
        str(path.relative_to(ROOT)): bad
        for path in modules
        if (bad := violations(path.read_text()))
    }
    assert found == {}
