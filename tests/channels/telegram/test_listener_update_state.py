"""The listener's saved update state never covers an update that was not handed to the seam:
a restart catches up from it, so anything past it that was not recorded and signalled
would be lost without a trace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ingest as telegram_service
from channels.telegram.listener import TelegramListener
from testkit.telegram_server.model import STARTING_PTS
from tests.channels.telegram.harness import ALICE, BOT_ID, TelegramHarness, private


async def test_a_new_listener_killed_before_its_first_checkpoint_still_catches_up(
    tg: TelegramHarness,
) -> None:
    """A session with no update state yet (a new bot, a first start): Telethon starts from
    the server's state of then. Unless that is saved at once, a restart asks the server
    again and skips what came in between; with nothing handed over the listener is idle,
    so no checkpoint would save it for seconds."""
    tg.world.send(ALICE, private(), "before the bot ever listened")
    assert await tg.saved_pts() is None
    async with tg.worker():
        listener = await tg.start_listener()
        # Saved by the time it is ready: where it started.
        assert await tg.saved_pts() == tg.world.state(BOT_ID).pts == STARTING_PTS + 1
        await tg.crash_listener(listener)
        tg.world.send(ALICE, private(), "while you were down")
        restarted = await tg.start_listener()
        replies = await tg.wait_for_replies(ALICE, 1)
        await tg.replies_match_bursts(ALICE)
        await tg.stop_listener(restarted)
    assert [r.text for r in replies] == ["[echo: 1 message] while you were down"]
    assert len(tg.replies_to(ALICE)) == 1


@pytest.fixture
def listeners(monkeypatch: pytest.MonkeyPatch) -> list[TelegramListener]:
    """Each listener ``serve`` builds, for a test to checkpoint it by hand."""
    made: list[TelegramListener] = []

    class Kept(TelegramListener):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(telegram_service, "TelegramListener", Kept)
    return made


async def test_a_checkpoint_waits_for_an_album_telethon_has_not_delivered_yet(
    tg: TelegramHarness, listeners: list[TelegramListener]
) -> None:
    """Telethon takes an album's items into its state at once but delivers the album
    event 0.5 s later, from a task of its own. A checkpoint in between must not save a
    state covering an album whose job has not even started."""
    async with tg.worker():
        listener = await tg.start_listener()
        for caption in ("", "our new salon", ""):
            tg.world.send(ALICE, private(), caption, photo=True, grouped_id=42)
        box = listeners[0]._client._message_box  # pinned telethon, as in the listener
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        album_pts = STARTING_PTS + 3
        while box.session_state()[0]["pts"] < album_pts and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert box.session_state()[0]["pts"] == album_pts  # all taken, album not yet out
        await listeners[0].checkpoint()
        saved, rows = await tg.saved_pts(), await tg.messages()
        await tg.stop_listener(listener)
    assert saved == album_pts
    # Saved past the album only once it was recorded (and signalled).
    assert [(r.message_id, r.kind) for r in rows] == [(1, "media")]


async def test_an_album_item_after_its_album_went_is_handed_over_on_its_own(
    tg: TelegramHarness, listeners: list[TelegramListener]
) -> None:
    """Telethon keeps a delivered album's hack: a later item of it only extends that, and
    no event ever fires. The item still reaches the seam, and holds no checkpoint."""
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "our new salon", photo=True, grouped_id=42)
        tg.world.send(ALICE, private(), "", photo=True, grouped_id=42)
        await tg.wait_for_replies(ALICE, 1)
        tg.world.send(ALICE, private(), "and the garden", photo=True, grouped_id=42)
        late_pts = tg.world.state(BOT_ID).pts
        replies = await tg.wait_for_replies(ALICE, 2)
        await asyncio.wait_for(listeners[0].checkpoint(), 10)
        saved = await tg.saved_pts()
        healthy = listeners[0].healthy_backlog
        await tg.stop_listener(listener)
    assert [r.text for r in replies] == [
        "[echo: 1 message] our new salon",
        "[echo: 1 message] and the garden",
    ]
    assert saved is not None and saved >= late_pts
    assert healthy


async def test_an_album_telethon_never_delivers_is_still_one_message(
    tg: TelegramHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a listener is killed mid-album, Telethon may dispatch the album's items but
    never its album event. The items are handed over once overdue, folded into the one
    message the album event would have made (its caption, the first item's id): a bare
    photo of the album answered on its own is a message the user never sent."""

    async def never_delivered(self: TelegramListener, event: Any) -> None:
        return None

    monkeypatch.setattr(TelegramListener, "_on_album", never_delivered)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "our new salon", photo=True, grouped_id=42)
        tg.world.send(ALICE, private(), "", photo=True, grouped_id=42)
        replies = await tg.wait_for_replies(ALICE, 1)
        await tg.replies_match_bursts(ALICE)
        rows = await tg.messages()
        await tg.stop_listener(listener)
    assert [r.text for r in replies] == ["[echo: 1 message] our new salon"]
    assert [(r.message_id, r.text) for r in rows] == [(1, "our new salon")]
    assert len(tg.replies_to(ALICE)) == 1
