from __future__ import annotations

import pytest

from channels.replay import ScriptError, parse_script


def test_parses_and_orders_events_by_time() -> None:
    events = parse_script(
        [
            '{"at": 1.0, "chat": 1, "user": 10, "type": "message", "id": 2, "text": "b"}',
            "",
            '{"at": 0.5, "chat": 1, "user": 10, "type": "message", "id": 1, "text": "a"}',
            '{"at": 0.7, "chat": 1, "user": 10, "type": "typing"}',
        ]
    )
    assert [(e.type, e.id) for e in events] == [("message", 1), ("typing", None), ("message", 2)]
    assert events[0].line == 3


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "line 1"),
        ("[1, 2]", "JSON object"),
        ('{"at": 0, "chat": 1, "user": 1, "type": "message", "id": 1}', '"text"'),
        ('{"at": 0, "chat": 1, "user": 1, "type": "message", "text": "x"}', '"id"'),
        ('{"at": -1, "chat": 1, "user": 1, "type": "typing"}', "at"),
        ('{"at": 0, "chat": 1, "user": 1, "type": "shout"}', "type"),
        ('{"at": 0, "chat": 1, "user": 1, "type": "typing", "colour": 1}', "colour"),
    ],
)
def test_a_bad_line_is_named_with_its_number(line: str, problem: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script([line], source="s.jsonl")
    assert str(caught.value).startswith("s.jsonl:1")
    assert problem in str(caught.value)


def test_an_empty_script_is_an_error() -> None:
    with pytest.raises(ScriptError, match="no events"):
        parse_script(["", "  "])


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"at": 1e300, "chat": 1, "user": 1, "type": "typing"}', "at"),
        ('{"at": 0, "chat": 1, "user": 1, "type": "message", "id": true, "text": "x"}', "id"),
        ('{"at": 0, "chat": 1, "user": 1, "type": "message", "id": "7", "text": "x"}', "id"),
        ('{"at": 0, "chat": "1", "user": 1, "type": "typing"}', "chat"),
        ('{"at": 0, "chat": 1, "user": 1, "type": "message", "id": 1, "text": 5}', "text"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
    ],
)
def test_values_a_script_cannot_mean_are_refused_with_their_line(line: str, problem: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script([line], source="s.jsonl")
    assert str(caught.value).startswith("s.jsonl:1") and problem in str(caught.value)


def test_a_script_that_is_not_utf8_is_refused_with_its_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from channels.replay import load_script

    path = tmp_path / "s.jsonl"
    good = b'{"at": 0, "chat": 1, "user": 1, "type": "typing"}\n'
    path.write_bytes(good + b'{"at": 0, "chat": 1, "user": 1, "type": "\xff"}\n')
    with pytest.raises(ScriptError, match=r"s.jsonl:2: not UTF-8"):
        load_script(path)
