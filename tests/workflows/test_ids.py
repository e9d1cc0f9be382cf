from hypothesis import given
from hypothesis import strategies as st

from workflows.ids import (
    burst_key,
    chat_reference,
    conversation_workflow_id,
    delivery_random_id,
    legacy_conversation_workflow_id,
    sender_reference,
)

# Parts include separators, quotes, percent signs, tildes and unicode on purpose.
part = st.one_of(st.integers(), st.text(alphabet=st.characters(), max_size=12))
topic = st.one_of(st.none(), part)


@given(a=st.tuples(part, part, topic), b=st.tuples(part, part, topic))
def test_distinct_conversations_never_share_a_workflow_id(a, b) -> None:  # type: ignore[no-untyped-def]
    def norm(t):  # type: ignore[no-untyped-def]
        return tuple(None if x is None else str(x) for x in t)

    if norm(a) != norm(b):
        assert legacy_conversation_workflow_id(*a) != legacy_conversation_workflow_id(*b)
    else:
        assert legacy_conversation_workflow_id(*a) == legacy_conversation_workflow_id(*b)


def test_separator_inside_a_part_does_not_collide() -> None:
    legacy = legacy_conversation_workflow_id
    assert legacy("a/b", "c") != legacy("a", "b/c")
    assert legacy("a", 1, None) != legacy("a", 1, "~")
    assert legacy("a", 1, "") != legacy("a", 1, None)
    assert conversation_workflow_id("a/b", "c") != conversation_workflow_id("a", "b/c")


def test_a_workflow_id_names_the_account_and_a_keyed_hash_never_the_chat() -> None:
    ref = chat_reference(b"key", "bot", -100123, 5)
    workflow_id = conversation_workflow_id("bot", ref)
    assert workflow_id == f"conversation/bot/c-{ref}"
    assert "100123" not in workflow_id and len(ref) == 16
    assert ref != chat_reference(b"other key", "bot", -100123, 5)
    assert ref != chat_reference(b"key", "bot", -100123, None)
    # Runs from before keyed ids are still found by their old id.
    assert legacy_conversation_workflow_id("bot", -100123, 5) == "conversation/bot/-100123/5"


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_sender_reference_is_stable_keyed_and_not_the_id(user_id: int) -> None:
    ref = sender_reference(b"key", "bot", user_id)
    assert ref == sender_reference(b"key", "bot", user_id)
    assert ref != user_id and 0 <= ref < 2**63
    assert ref != sender_reference(b"key", "bot", user_id + 1)


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=20, unique=True))
def test_burst_key_depends_on_the_set_of_messages_not_their_order(ids: list[int]) -> None:
    assert burst_key("w", ids) == burst_key("w", list(reversed(ids)))
    assert burst_key("w", ids) != burst_key("w2", ids)
    assert burst_key("w", ids) != burst_key("w", [*ids, max(ids) + 1])


def test_random_id_is_a_signed_64_bit_int_per_chunk() -> None:
    first, second = delivery_random_id("b-1", 0), delivery_random_id("b-1", 1)
    assert first != second
    assert first == delivery_random_id("b-1", 0)
    assert -(2**63) <= first < 2**63
