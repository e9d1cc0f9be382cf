"""Accounts as the admin API manages them ("bots"): list, create, change, enable, delete,
purge. Each query takes a session and never commits: the caller owns the transaction,
and writes the audit row in the same one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import (
    account,
    alert,
    burst,
    conversation,
    delivery,
    message,
    reply,
    send_attempt,
    telegram_session,
)

# What the API shows of an account: everything but the sealed token (only whether one is
# set).
BOT_COLUMNS = (
    account.c.id,
    account.c.key,
    account.c.kind,
    account.c.display_name,
    account.c.start_text,
    account.c.help_text,
    account.c.error_text,
    account.c.system_prompt,
    account.c.model,
    account.c.active,
    account.c.settings,
    account.c.last_error,
    account.c.created_at,
    account.c.updated_at,
    (account.c.bot_token.is_not(None)).label("has_token"),
)


# What a sealed bot token is bound to: opened under another account's key, it fails.
def token_context(key: str) -> str:
    return f"account:{key}:bot_token"


LISTENED_KINDS = ("telegram_bot", "telegram_user")


def _live() -> Any:
    return account.c.deleted_at.is_(None)


async def list_bots(session: AsyncSession) -> list[Any]:
    stmt = select(*BOT_COLUMNS).where(_live()).order_by(account.c.id)
    return list(await session.execute(stmt))


async def get_bot(session: AsyncSession, account_id: int, *, lock: bool = False) -> Any:
    stmt = select(*BOT_COLUMNS).where(account.c.id == account_id, _live())
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).one_or_none()


async def create_bot(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """The new bot's id, or None when its key is taken (by a live or deleted bot)."""
    stmt = (
        insert(account)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[account.c.key])
        .returning(account.c.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def update_bot(session: AsyncSession, account_id: int, values: dict[str, Any]) -> bool:
    stmt = (
        update(account)
        .where(account.c.id == account_id, _live())
        .values(**values, updated_at=func.now())
        .returning(account.c.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def sealed_token(session: AsyncSession, account_id: int) -> bytes | None:
    stmt = select(account.c.bot_token).where(account.c.id == account_id, _live())
    return (await session.execute(stmt)).scalar_one_or_none()


async def soft_delete(session: AsyncSession, account_id: int) -> bool:
    """Gone from the API and from every listener (inactive); the transcript stays."""
    return await update_bot(session, account_id, {"active": False, "deleted_at": func.now()})


async def purge(session: AsyncSession, account_id: int, account_key: str) -> dict[str, int]:
    """Delete the account and everything recorded for it, children first. Returns the
    rows deleted per table (for the audit row)."""
    conversations = select(conversation.c.id).where(conversation.c.account_id == account_id)
    bursts = select(burst.c.id).where(burst.c.conversation_id.in_(conversations))
    replies = select(reply.c.id).where(reply.c.burst_id.in_(bursts))
    counts: dict[str, int] = {}

    async def run(name: str, stmt: Any) -> None:
        counts[name] = (await session.execute(stmt)).rowcount  # type: ignore[attr-defined]

    await run("delivery", delete(delivery).where(delivery.c.reply_id.in_(replies)))
    await run("send_attempt", delete(send_attempt).where(send_attempt.c.reply_id.in_(replies)))
    await run("reply", delete(reply).where(reply.c.id.in_(replies)))
    await run("message", delete(message).where(message.c.account_id == account_id))
    # One statement: a superseded burst's successor goes with it (FKs are checked at its end).
    await run("burst", delete(burst).where(burst.c.id.in_(bursts)))
    await run("conversation", delete(conversation).where(conversation.c.account_id == account_id))
    await run("alert", delete(alert).where(alert.c.account_id == account_id))
    # Its update state and entity cache go with it (ON DELETE CASCADE).
    await run(
        "telegram_session",
        delete(telegram_session).where(telegram_session.c.account_key == account_key),
    )
    await run("account", delete(account).where(account.c.id == account_id))
    return counts


async def listenable_accounts(session: AsyncSession) -> list[Any]:
    """The accounts a listener fleet serves: enabled, not deleted, Telegram, and able to
    log in (a sealed bot token, or a session stored by `lull login`)."""
    has_session = exists().where(telegram_session.c.account_key == account.c.key)
    stmt = (
        select(account.c.id, account.c.key, account.c.kind, account.c.updated_at)
        .where(
            _live(),
            account.c.active,
            account.c.kind.in_(LISTENED_KINDS),
            or_(account.c.bot_token.is_not(None), has_session),
        )
        .order_by(account.c.id)
    )
    return list(await session.execute(stmt))


async def serving_state(session: AsyncSession, account_id: int) -> Any:
    """What a listener follows while it serves an account: whether it is still enabled
    (and not deleted), when it last changed, its settings and sealed token."""
    stmt = select(
        (account.c.active & account.c.deleted_at.is_(None)).label("enabled"),
        account.c.updated_at,
        account.c.settings,
        account.c.bot_token,
    ).where(account.c.id == account_id)
    return (await session.execute(stmt)).one()


async def set_last_error(session: AsyncSession, account_id: int, error: str | None) -> None:
    """What stopped a listener serving the account (None: serving again). Not a change
    of the account: ``updated_at`` stays."""
    await session.execute(
        update(account).where(account.c.id == account_id).values(last_error=error)
    )
