"""Splitting a long reply into channel-sized chunks at natural boundaries."""

from __future__ import annotations

import re

FENCE = "```"
_SENTENCE_END = re.compile(r"[.!?…](?=\s)")


def split_message(text: str, limit: int) -> list[str]:
    """Chunks of at most ``limit`` characters, cut at a paragraph, else a line, else a
    sentence, else a space, and never inside a code block when a cut outside one exists."""
    if limit < 16:
        raise ValueError("limit must be at least 16 characters")
    chunks: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _best_cut(rest, limit)
        chunk, rest = rest[:cut].rstrip(), rest[cut:]
        if _inside_code(chunk, len(chunk)):
            # A code block longer than a chunk: close it here and reopen it in the next one,
            # keeping the code's own indentation.
            chunk += "\n" + FENCE
            rest = FENCE + "\n" + rest.lstrip("\n")
        else:
            rest = rest.lstrip()
        if chunk:
            chunks.append(chunk)
    if rest:
        chunks.append(rest)
    return chunks


def _best_cut(text: str, limit: int) -> int:
    window = text[:limit]
    finders = (_paragraph_cuts, _line_cuts, _sentence_cuts, _space_cuts)
    # First look for a cut that leaves a reasonably full chunk; then accept any cut that
    # stays outside code, since a short chunk beats a code block cut in two.
    for shortest in (limit // 4, 1):
        for finder in finders:
            cuts = [c for c in finder(window) if c >= shortest and not _inside_code(text, c)]
            if cuts:
                return cuts[-1]
    # No natural boundary outside code: cut inside, leaving room to close the fence.
    return limit - len(FENCE) - 1 if _inside_code(text, limit) else limit


def _paragraph_cuts(window: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\n\s*\n", window)]


def _line_cuts(window: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\n", window)]


def _sentence_cuts(window: str) -> list[int]:
    return [m.end() for m in _SENTENCE_END.finditer(window)]


def _space_cuts(window: str) -> list[int]:
    return [m.end() for m in re.finditer(r" ", window)]


def _inside_code(text: str, position: int) -> bool:
    return text.count(FENCE, 0, position) % 2 == 1
