"""The behaviour versions of ConversationWorkflow: ``workflow.patched`` ids, newest first.

A run records the patch of the release it started under, and replays as recorded
(docs/decisions/0005-one-patch-per-release.md). Deterministic: only ``workflow.patched``.
"""

from __future__ import annotations

from temporalio import workflow

# Runs started before this patch persisted bursts with a regular activity.
PATCH_LOCAL_PERSIST = "persist-burst-local-activity"
# send_reply heartbeats, so a dead listener is noticed in seconds, not after 60 s.
PATCH_SEND_HEARTBEAT = "send-reply-heartbeat"
# A failed burst's user gets the account's error message.
PATCH_FAILURE_NOTICE = "failed-burst-notice"
# The 2026-12 release, implying the three patches above:
#   - a message's quiet period runs from when the ingest accepted it;
#   - LullPhase is "active" or "paused", upserted only for a handoff.
PATCH_2026_12 = "lull-2026-12"
# Fewer timer events, implying lull-2026-12:
#   - a timer with under half a quiet period left is replaced when the deadline moves
#     (docs/decisions/0001-keep-armed-timers.md);
#   - the idle-close timer stays armed while bursts come and go.
PATCH_TIMERS = "lull-2026-12-timers"
# The promises release, implying lull-2026-12-timers:
#   - a message joins the open burst whenever it arrives before that burst is due, also
#     when the max wait set the due time (``policy.burst_seq_for``);
#   - a pause wakes the idle wait, so a paused conversation never idle-closes;
#   - flush and clear answer once they have taken the buffer;
#   - a burst failed as SendInDoubt sends no error notice.
PATCH_PROMISES = "lull-2026-12-promises"
# Persist with a regular activity again, implying lull-2026-12-promises
# (docs/decisions/0004-regular-activities.md).
PATCH_NO_EMPTY_TASKS = "lull-2026-12-no-empty-tasks"
# The supersede release, implying lull-2026-12-no-empty-tasks: with ``mid_reply``
# "supersede", a message from a burst's author before its reply goes out supersedes the
# reply (workflows/mid_reply.py), and a ready reply waits while its author types.
PATCH_SUPERSEDE = "lull-2026-12-supersede"
# The account-settings release, implying lull-2026-12-supersede: a message may carry its
# account's current settings (``MessageReceived.config``); a run takes changed ones at
# once, or once the burst being answered is (workflows/inbox._take_pending_config).
PATCH_ACCOUNT_SETTINGS = "lull-2026-12-account-settings"
# Newest first: a run asks each until one answers.
RELEASES = (
    PATCH_ACCOUNT_SETTINGS,
    PATCH_SUPERSEDE,
    PATCH_NO_EMPTY_TASKS,
    PATCH_PROMISES,
    PATCH_TIMERS,
    PATCH_2026_12,
)


def since(patch: str = PATCH_2026_12) -> bool:
    """Whether this run has ``patch``'s behaviour: a release implies its own and every
    earlier patch's. Runs from before a patch replay as recorded: ``patched`` is False."""
    for release in RELEASES:
        if workflow.patched(release):
            return True
        if release == patch:
            return False
    return workflow.patched(patch)
