"""The account a channel process serves, registered in Postgres at its start."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.queries import accounts as db_accounts
from inbound.incoming import Account


async def register_account(
    sessionmaker: async_sessionmaker[AsyncSession], *, key: str, kind: str, display_name: str
) -> Account:
    async with sessionmaker() as session, session.begin():
        account_id = await db_accounts.upsert_account(
            session, key=key, kind=kind, display_name=display_name
        )
    return Account(account_id, key)
