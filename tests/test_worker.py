"""The worker's sandbox choice (settings.workflow_modules)."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from worker import workflow_runner


def test_shared_modules_keep_the_sandbox_but_import_workflow_modules_once() -> None:
    shared = workflow_runner("shared")
    assert isinstance(shared, SandboxedWorkflowRunner)
    assert shared.restrictions.passthrough_all_modules
    # Still the default restrictions otherwise: builtins such as open stay trapped.
    assert shared.restrictions.invalid_module_members is (
        SandboxRestrictions.default.invalid_module_members
    )


def test_per_run_is_the_sdk_default_sandbox() -> None:
    per_run = workflow_runner("per-run")
    assert isinstance(per_run, SandboxedWorkflowRunner)
    assert per_run.restrictions is SandboxRestrictions.default
