"""Everything that crosses Temporal: ids and small fields, never transcripts or secrets.

Message text stays in Postgres; signals carry the message id and its length only, so
histories (which ops read in the UI) hold no user content.

Annotations here are plain types, not strings (no ``from __future__ import annotations``):
the SDK's converter calls ``get_type_hints`` for every dataclass it decodes, and a string
annotation is compiled and evaluated each time, in the sandbox too. Plain ones decode a
500-message signal 2.6 times faster.
"""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ConversationRef:
    """Which conversation a workflow serves. ``chat_ref`` is a keyed hash, safe to show;
    the chat's Telegram id stays in Postgres (``conversation_id`` leads to it)."""

    account_key: str
    account_id: int
    conversation_id: int
    chat_ref: str
    # Inputs of runs started before keyed ids carried the raw chat and topic; kept so
    # they still decode, never sent now.
    chat_id: int | None = None
    topic_id: int | None = None


@dataclass(frozen=True)
class ConversationConfig:
    """The settings a conversation workflow needs, fixed for the life of a run."""

    debounce_seconds: float
    max_burst_messages: int
    idle_close_seconds: float
    # Fields below were added after the first release: defaults keep old inputs decodable.
    max_wait_seconds: float = 60.0
    max_burst_chars: int = 4000
    # Typing lease per chat action ("typing", "record_audio", ...); others get the default.
    typing_window_seconds: float = 6.0
    typing_windows: dict[str, float] = field(default_factory=dict)
    buffer_enabled: bool = True
    # Continue-as-new once a run's history reaches this many events (or the server asks).
    max_history_events: int = 1500
    # Whether the server has Lull's search attributes, so the workflow may upsert its phase.
    search_attributes: bool = False
    # How long a burst waits out an LLM or channel outage (retrying) before it fails.
    outage_window_seconds: float = 1800.0
    # What a message from a burst's author does while its reply is on the way (from the
    # supersede release): "supersede" discards the reply and answers both bursts as one,
    # "queue" makes it the next burst. Old inputs decode as "queue", as they ran.
    mid_reply: str = "queue"
    # Supersedes in a row after which a reply goes out anyway (the user never pauses).
    max_supersedes: int = 2
    # A reply ready while the burst's author is typing waits for the typing lease.
    hold_reply_while_typing: bool = False


@dataclass(frozen=True)
class BufferedMessage:
    message_id: int
    sender_id: int
    chars: int
    received_at: datetime
    # Which burst the message joined when it arrived; bursts flush in this order.
    burst_seq: int = 0
    # Last edit of this message, or of its burst by a delete: restarts the quiet period.
    touched_at: datetime | None = None
    # The command's name ("start") when the message is a command; it is answered alone.
    command: str | None = None

    @property
    def active_at(self) -> datetime:
        return self.touched_at or self.received_at


@dataclass(frozen=True)
class ForcedFlush:
    """An operator's flush_now or clear: bursts up to ``through_seq`` are due at ``at``."""

    through_seq: int
    reason: str
    at: datetime


@dataclass(frozen=True)
class PauseInput:
    """Pause replying (human handoff); ``minutes`` resumes automatically after that long."""

    minutes: float | None = None


@dataclass(frozen=True)
class SupersededBurst:
    """A burst whose reply was discarded; the burst that answers its messages takes it over."""

    burst_key: str
    message_ids: list[int]


@dataclass
class CarriedState:
    """What survives continue-as-new: the open buffer and recently seen message ids."""

    buffer: list[BufferedMessage] = field(default_factory=list)
    lease_until: datetime | None = None
    seen_ids: list[int] = field(default_factory=list)
    bursts_flushed: int = 0
    last_burst_key: str | None = None
    paused: bool = False
    resume_at: datetime | None = None
    forced: ForcedFlush | None = None
    # The supersede release: how many replies in a row were superseded (the bound), the
    # last one's key and messages, and how many this conversation has had.
    supersedes_in_row: int = 0
    superseded: SupersededBurst | None = None
    bursts_superseded: int = 0
    # The account's changed settings, taken at the next burst (account-settings release).
    pending_config: ConversationConfig | None = None


@dataclass(frozen=True)
class ConversationInput:
    conversation: ConversationRef
    config: ConversationConfig
    # The task queue of the process that owns this account's channel; `send_reply` runs there.
    send_task_queue: str
    carried: CarriedState | None = None


@dataclass(frozen=True)
class MessageReceived:
    message_id: int
    # The sender's keyed reference (ids.sender_reference), never the Telegram user id.
    sender_id: int
    chars: int
    command: str | None = None
    # When the ingest accepted the message (its wall clock): the quiet period runs from
    # then, not from when Temporal handed the signal over, so a busy seam or server does
    # not push the flush later. None from older senders: the signal's own time is used.
    accepted_at: datetime | None = None
    # Sent again by the ingest's sweep: recorded long ago and never flushed (its first
    # signal may have been lost). A seen id is ignored as always; an unseen one is warned of.
    resent: bool = False
    # The account's settings as the ingest knows them now, on the first message it sends
    # a conversation and after they change (account-settings release): a run started
    # under older ones takes them at its next burst. Older workers ignore the field.
    config: ConversationConfig | None = None


@dataclass(frozen=True)
class MessagesReceived:
    """Messages of one conversation that reached the ingest together, in order."""

    messages: list[MessageReceived]


@dataclass(frozen=True)
class MessageEdited:
    message_id: int
    chars: int


@dataclass(frozen=True)
class MessagesDeleted:
    message_ids: list[int]


@dataclass(frozen=True)
class TypingObserved:
    """A chat action of a user: typing, record_audio, record_video, upload or cancel."""

    # The sender's keyed reference (ids.sender_reference), never the Telegram user id.
    sender_id: int
    action: str
    # How long before the signal the action was seen: the ingest holds most actions back
    # (inbound/typing_gate.py), and the lease runs from when the user acted.
    age_seconds: float = 0.0


@dataclass(frozen=True)
class ConversationState:
    """Answer of the ``state`` query."""

    phase: str
    buffered: int
    first_message_at: datetime | None
    last_message_at: datetime | None
    typing_lease_until: datetime | None
    deadline: datetime | None
    deadline_rule: str | None
    bursts_flushed: int
    last_burst_key: str | None
    paused: bool = False
    resume_at: datetime | None = None
    # Replies discarded because their author wrote before they went out.
    bursts_superseded: int = 0


@dataclass(frozen=True)
class PersistBurstInput:
    conversation_id: int
    burst_key: str
    message_ids: list[int]
    reason: str
    first_message_at: datetime
    last_message_at: datetime
    flushed_at: datetime
    # Set for a burst that is recorded but not answered: "cleared" or "paused".
    drop_as: str | None = None
    # The command a command burst answers, as the channel parsed it.
    command: str | None = None
    # The superseded burst whose messages this one answers: it records this one as its
    # successor.
    takes_over: str | None = None


@dataclass(frozen=True)
class PersistBurstResult:
    burst_id: int
    # How many of the burst's messages are still present (not deleted) in Postgres.
    message_count: int


@dataclass(frozen=True)
class GenerateReplyInput:
    burst_key: str


@dataclass(frozen=True)
class GenerateReplyResult:
    reply_id: int
    chars: int
    # True when a stored reply was returned without calling the LLM.
    reused: bool


@dataclass(frozen=True)
class SendReplyInput:
    burst_key: str
    # Send a chunk whose earlier send was never answered, long ago (`lull retry
    # --resend-in-doubt`): it may show twice, the operator decided.
    resend_in_doubt: bool = False


@dataclass(frozen=True)
class SendReplyResult:
    chunks: int
    newly_sent: int


@dataclass(frozen=True)
class MidReplyInput:
    """What a message from a burst's author did while its reply was on the way: the
    burst is superseded (its reply discarded, its messages released to the next burst)
    or kept, and ``rule`` says which rule decided."""

    burst_key: str
    superseded: bool
    rule: str


@dataclass(frozen=True)
class MarkBurstFailedInput:
    burst_key: str
    error_type: str
    error: str


@dataclass(frozen=True)
class FailureNoticeInput:
    """Tell the user their burst could not be answered (the account's error message)."""

    burst_key: str


@dataclass(frozen=True)
class RetryBurstInput:
    """`lull retry`: re-run a failed burst's remaining steps."""

    burst_key: str
    # The task queue of the process owning the burst's channel (its sends run there).
    send_task_queue: str
    outage_window_seconds: float = 1800.0
    resend_in_doubt: bool = False


@dataclass(frozen=True)
class RetryBurstResult:
    # "sent", or "failed" when the retry failed too (the error is stored on the burst).
    status: str
    # Whether the reply had to be generated (False: the stored one was sent).
    generated: bool
    chunks_sent: int
    error_type: str | None = None
    # Why there was nothing to retry (status "nothing_to_retry").
    detail: str | None = None


@dataclass(frozen=True)
class AdminSendInput:
    """An operator's message from the admin API: its burst and reply rows are stored (the
    text stays in Postgres); the workflow sends it on the account's send queue."""

    burst_key: str
    send_task_queue: str
    outage_window_seconds: float = 1800.0
