"""The Postgres-backed Telethon session: what a restarted listener pod reads back."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.crypto import AuthKey
from telethon.tl import types

from channels.telegram.session import PostgresSession
from db.tables import telegram_entity
from testkit.keys import TEST_BOX

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _state(pts: int) -> types.updates.State:
    return types.updates.State(pts=pts, qts=0, date=WHEN, seq=0, unread_count=0)


async def test_a_saved_session_loads_back_whole(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = f"s-{uuid.uuid4().hex[:8]}"
    session = await PostgresSession.load(sessionmaker, key, box=TEST_BOX)
    assert not session.exists
    raw_key = os.urandom(256)
    session.set_dc(2, "127.0.0.1", 4430)
    session.auth_key = AuthKey(raw_key)
    session.set_update_state(0, _state(41))
    session.set_update_state(1234, _state(7))
    session.process_entities(
        types.contacts.ResolvedPeer(
            peer=types.PeerUser(5),
            users=[types.User(id=5, access_hash=55, first_name="Ann", username="ann")],
            chats=[],
        )
    )
    await session.save()

    loaded = await PostgresSession.load(sessionmaker, key, box=TEST_BOX)
    assert loaded.exists
    assert (loaded.dc_id, loaded.server_address, loaded.port) == (2, "127.0.0.1", 4430)
    assert loaded.auth_key.key == raw_key
    assert loaded.get_update_state(0).pts == 41
    assert loaded.get_update_state(1234).pts == 7
    assert loaded.get_input_entity(5) == types.InputPeerUser(5, 55)
    assert loaded.get_input_entity("ann") == types.InputPeerUser(5, 55)


async def test_held_update_state_only_moves_at_checkpoints(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = f"s-{uuid.uuid4().hex[:8]}"
    session = await PostgresSession.load(sessionmaker, key, box=TEST_BOX)
    session.set_dc(2, "127.0.0.1", 4430)
    session.hold_update_state()
    session.set_update_state(0, _state(10))  # Telethon's own periodic save: ignored
    assert session.get_update_state(0) is None
    with session.allow_update_state():
        session.set_update_state(0, _state(9))
    session.set_update_state(0, _state(12))
    await session.save()
    assert (await PostgresSession.load(sessionmaker, key, box=TEST_BOX)).get_update_state(
        0
    ).pts == 9


async def test_a_renamed_user_is_saved_once_and_deleting_forgets_everything(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = f"s-{uuid.uuid4().hex[:8]}"
    session = await PostgresSession.load(sessionmaker, key, box=TEST_BOX)
    session.set_dc(2, "127.0.0.1", 4430)
    session.auth_key = AuthKey(os.urandom(256))
    for username in ("old", "new"):
        session.process_entities(
            types.contacts.ResolvedPeer(
                peer=types.PeerUser(6),
                users=[types.User(id=6, access_hash=66, first_name="B", username=username)],
                chats=[],
            )
        )
    await session.save()  # two rows for id 6 in memory must not break the upsert
    assert (await PostgresSession.load(sessionmaker, key, box=TEST_BOX)).get_input_entity(
        6
    ).user_id == 6
    async with sessionmaker() as db:
        rows = await db.execute(
            select(telegram_entity.c.username).where(telegram_entity.c.account_key == key)
        )
        assert rows.scalars().all() == ["new"]  # one row, with the new name
    await session.delete()
    assert not (await PostgresSession.load(sessionmaker, key, box=TEST_BOX)).exists
