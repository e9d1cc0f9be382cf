"""Each activity class lists exactly the activities it defines, as the workers register them."""

from __future__ import annotations

from activities.bursts import BurstActivities
from activities.replies import ReplyActivities
from activities.sending import SendActivities


def names(host: object) -> set[str]:
    return {getattr(fn, "__temporal_activity_definition").name for fn in host.activities()}  # type: ignore[attr-defined]


def test_each_class_lists_its_activities_under_their_registered_names() -> None:
    bursts = BurstActivities.__new__(BurstActivities)
    replies = ReplyActivities.__new__(ReplyActivities)
    sends = SendActivities.__new__(SendActivities)
    assert names(bursts) == {
        "persist_burst",
        "mark_burst_failed",
        "reopen_failed_burst",
        "record_mid_reply",
    }
    assert names(replies) == {"generate_reply"}
    assert names(sends) == {"send_reply", "send_failure_notice"}
