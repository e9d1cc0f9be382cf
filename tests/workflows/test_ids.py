from hypothesis import given
from hypothesis import strategies as st

from workflows.ids import burst_key, conversation_workflow_id, delivery_random_id

# Parts include separators, quotes, percent signs, tildes and unicode on purpose.
part = st.one_of(st.integers(), st.text(alphabet=st.characters(), max_size=12))
topic = st.one_of(st.none(), part)


@given(a=st.tuples(part, part, topic), b=st.tuples(part, part, topic))
def test_distinct_conversations_never_share_a_workflow_id(a, b) -> None:  # type: ignore[no-untyped-def]
    def norm(t):  # type: ignore[no-untyped-def]
        return tuple(None if x is None else str(x) for x in t)

    if norm(a) != norm(b):
        assert conversation_workflow_id(*a) != conversation_workflow_id(*b)
    else:
        assert conversation_workflow_id(*a) == conversation_workflow_id(*b)


def test_separator_inside_a_part_does_not_collide() -> None:
    assert conversation_workflow_id("a/b", "c") != conversation_workflow_id("a", "b/c")
    assert conversation_workflow_id("a", 1, None) != conversation_workflow_id("a", 1, "~")
    assert conversation_workflow_id("a", 1, "") != conversation_workflow_id("a", 1, None)


def test_workflow_id_is_readable_for_plain_ids() -> None:
    assert conversation_workflow_id("console", 1) == "conversation/console/1/~"
    assert conversation_workflow_id("bot", -100123, 5) == "conversation/bot/-100123/5"


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
