"""Accounts: registration and lookups (whether one is enabled: bots.serving_state). Each
query takes a session and never commits: the caller owns the transaction."""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.rows import AccountRow
from db.tables import account, conversation


async def upsert_account(session: AsyncSession, *, key: str, kind: str, display_name: str) -> int:
    stmt = (
        insert(account)
        .values(key=key, kind=kind, display_name=display_name)
        .on_conflict_do_update(index_elements=[account.c.key], set_={"display_name": display_name})
        .returning(account.c.id)
    )
    return (await session.execute(stmt)).scalar_one()


async def account_of_conversation(session: AsyncSession, conversation_id: int) -> int:
    stmt = select(conversation.c.account_id).where(conversation.c.id == conversation_id)
    return int((await session.execute(stmt)).scalar_one())


async def load_account(session: AsyncSession, account_id: int) -> AccountRow:
    stmt = select(account).where(account.c.id == account_id)
    return cast(AccountRow, (await session.execute(stmt)).one())


async def account_chats(session: AsyncSession, account_id: int) -> list[tuple[int, int | None]]:
    """(chat, topic) of every conversation of the account."""
    stmt = select(conversation.c.chat_id, conversation.c.topic_id).where(
        conversation.c.account_id == account_id
    )
    return [(row.chat_id, row.topic_id) for row in await session.execute(stmt)]
