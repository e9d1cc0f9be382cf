"""Credentials at rest: a Telegram auth key is stored sealed, opens only with the right
key and row, rotates, and the entity cache keeps no phone numbers."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.crypto import AuthKey
from telethon.tl import types

from app.masking import mask_url
from app.settings import SettingsError, load_settings
from channels.telegram.session import PostgresSession, reseal_auth_keys
from db.sealed import SecretBox, SecretKeyError, is_sealed
from db.tables import telegram_entity, telegram_session
from testkit.keys import TEST_BOX, TEST_SECRET_KEY


async def stored_key(sm: async_sessionmaker[AsyncSession], account: str) -> bytes:
    async with sm() as db:
        found = await db.execute(
            select(telegram_session.c.auth_key).where(telegram_session.c.account_key == account)
        )
        return bytes(found.scalar_one())


async def saved_session(sm: async_sessionmaker[AsyncSession], box: SecretBox) -> tuple[str, bytes]:
    account, raw = f"s-{uuid.uuid4().hex[:8]}", os.urandom(256)
    session = await PostgresSession.load(sm, account, box=box)
    session.set_dc(2, "127.0.0.1", 443)
    session.auth_key = AuthKey(raw)
    await session.save()
    return account, raw


async def test_an_auth_key_is_stored_sealed_and_opens_only_with_its_key_and_row(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account, raw = await saved_session(sessionmaker, TEST_BOX)
    stored = await stored_key(sessionmaker, account)
    assert is_sealed(stored) and raw not in stored
    loaded = await PostgresSession.load(sessionmaker, account, box=TEST_BOX)
    assert loaded.auth_key is not None and loaded.auth_key.key == raw
    other = SecretBox.parse(SecretBox.new_key_setting("test"))  # same id, other key
    with pytest.raises(SecretKeyError, match="does not open"):
        await PostgresSession.load(sessionmaker, account, box=other)
    # Copied onto another account's row, it does not open there.
    account2, _ = await saved_session(sessionmaker, TEST_BOX)
    async with sessionmaker() as db, db.begin():
        await db.execute(
            update(telegram_session)
            .where(telegram_session.c.account_key == account2)
            .values(auth_key=stored)
        )
    with pytest.raises(SecretKeyError):
        await PostgresSession.load(sessionmaker, account2, box=TEST_BOX)


async def test_an_unsealed_key_from_before_still_loads_and_is_sealed_when_saved(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account, raw = await saved_session(sessionmaker, TEST_BOX)
    async with sessionmaker() as db, db.begin():
        await db.execute(
            update(telegram_session)
            .where(telegram_session.c.account_key == account)
            .values(auth_key=raw)
        )
    loaded = await PostgresSession.load(sessionmaker, account, box=TEST_BOX)
    assert loaded.auth_key is not None and loaded.auth_key.key == raw
    await loaded.save()
    assert is_sealed(await stored_key(sessionmaker, account))


async def test_rotation_reseals_under_the_new_key_and_the_old_one_can_go(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account, raw = await saved_session(sessionmaker, TEST_BOX)
    both = SecretBox.parse(SecretBox.new_key_setting("next") + "," + TEST_SECRET_KEY)
    changed, _ = await reseal_auth_keys(sessionmaker, both)
    assert changed >= 1
    assert both.sealed_with_current(await stored_key(sessionmaker, account))
    new_only = SecretBox.parse(both_first(both))
    loaded = await PostgresSession.load(sessionmaker, account, box=new_only)
    assert loaded.auth_key is not None and loaded.auth_key.key == raw
    with pytest.raises(SecretKeyError, match="does not hold"):
        await PostgresSession.load(sessionmaker, account, box=TEST_BOX)
    before = await stored_key(sessionmaker, account)
    await reseal_auth_keys(sessionmaker, both)
    assert await stored_key(sessionmaker, account) == before  # already current: untouched


def both_first(box: SecretBox) -> str:
    import base64

    return f"{box.current}:{base64.b64encode(box._keys[box.current]).decode()}"


async def test_the_entity_cache_keeps_no_phone_numbers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = f"s-{uuid.uuid4().hex[:8]}"
    session = await PostgresSession.load(sessionmaker, account, box=TEST_BOX)
    session.set_dc(2, "127.0.0.1", 443)
    user = types.User(id=77, access_hash=7, first_name="Ann", phone="15550100")
    session.process_entities(types.contacts.ResolvedPeer(types.PeerUser(77), [], [user]))
    await session.save()
    async with sessionmaker() as db:
        rows = (
            await db.execute(
                select(telegram_entity.c.phone, telegram_entity.c.hash).where(
                    telegram_entity.c.account_key == account
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [(None, 7)]


@pytest.mark.parametrize("value", ["nokey", "k1:notbase64!", "k1:c2hvcnQ=", "bad id:" + "A" * 44])
def test_a_malformed_secret_key_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LULL_SECRET_KEY", value)
    with pytest.raises(SettingsError, match="LULL_SECRET_KEY"):
        load_settings()


def test_urls_lull_prints_carry_no_credentials() -> None:
    url = "https://bob:hunter2@llm.example/v1?api_key=sk-123&model=x"
    masked = mask_url(url)
    assert "hunter2" not in masked and "sk-123" not in masked
    assert masked.startswith("https://bob:***@llm.example/v1") and "model=x" in masked
    settings = load_settings(llm_base_url=url, llm_api_key="sk-1")
    assert "hunter2" not in settings.llm_label and "sk-123" not in settings.llm_label


def test_a_configured_database_needs_a_secret_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.dev_stack import StackError
    from app.wiring import secret_box

    configured = load_settings(
        database_url="postgresql+asyncpg://x/y",
        data_dir=tmp_path,
        chat_hash_key="a-chat-hash-key-of-our-own",
    )
    with pytest.raises(StackError, match="LULL_SECRET_KEY is needed"):
        secret_box(configured)
    dev = load_settings(data_dir=tmp_path / "dev")
    first, again = secret_box(dev), secret_box(dev)
    assert first.current == again.current == "dev"
    assert ((tmp_path / "dev" / "secret.key").stat().st_mode & 0o777) == 0o600
