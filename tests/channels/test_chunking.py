from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from channels.chunking import FENCE, split_message


def test_short_text_is_one_chunk() -> None:
    assert split_message("hello", 4096) == ["hello"]


def test_prefers_paragraph_then_line_then_sentence_boundaries() -> None:
    para = "a" * 50 + "\n\n" + "b" * 50
    assert split_message(para, 80) == ["a" * 50, "b" * 50]
    lines = "a" * 50 + "\n" + "b" * 50
    assert split_message(lines, 80) == ["a" * 50, "b" * 50]
    sentences = "First sentence is here. Second one follows it closely and then some more."
    assert split_message(sentences, 40)[0] == "First sentence is here."


def test_never_cuts_inside_a_code_block_when_a_boundary_outside_exists() -> None:
    code = f"{FENCE}\n" + "x = 1\n" * 10 + FENCE
    intro = "A short intro."
    text = intro + "\n\n" + code + "\n\nOutro."
    # Intro and code together exceed the limit; the only cut outside the code is short.
    assert split_message(text, 80) == [intro, code + "\n\nOutro."]


def test_an_overlong_code_block_is_closed_and_reopened() -> None:
    code = f"{FENCE}\n" + "".join(f"line {i}\n" for i in range(40)) + FENCE
    chunks = split_message(code, 100)
    assert len(chunks) > 1
    assert all(len(c) <= 100 for c in chunks)
    assert all(c.count(FENCE) % 2 == 0 for c in chunks)


@given(st.text(alphabet=st.sampled_from("ab .\n`é😀"), max_size=3000), st.integers(16, 500))
def test_chunks_fit_and_keep_every_visible_character(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    visible = "".join(text.split()).replace("`", "")
    assert "".join("".join(chunks).split()).replace("`", "") == visible
