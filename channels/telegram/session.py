"""A Telethon session stored in Postgres, so listener pods need no local disk.

Telethon awaits session methods that return coroutines (``utils.maybe_async``), so
``save``, ``close`` and ``delete`` write to the database directly. The session is loaded
before the client is built (``PostgresSession.load``) because Telethon reads it
synchronously on connect.

What is stored: the DC and auth key (a credential: sealed with LULL_SECRET_KEY, see
db/sealed.py, and never leaving this module), the update state (so ``catch_up`` resumes
where the last listener stopped) and the entity cache (access hashes, needed to send to a
user after a restart; no phone numbers, which Lull does not need).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.crypto import AuthKey
from telethon.sessions import MemorySession
from telethon.tl import types

from db.sealed import SecretBox, SecretKeyError
from db.tables import telegram_entity, telegram_session, telegram_update_state

# Telethon awaits coroutine session methods (utils.maybe_async) but warns each time; we
# depend on it deliberately, with Telethon pinned, and the tests exercise it.
warnings.filterwarnings("ignore", message="Using async sessions support is an experimental")


class PostgresSession(MemorySession):
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], account_key: str, *, box: SecretBox
    ) -> None:
        super().__init__()
        self._sessionmaker = sessionmaker
        self.account_key = account_key
        self._box = box
        self._saved_entities: set[tuple[Any, ...]] = set()
        self._holding = False
        self._allowed = False

    @classmethod
    async def load(
        cls, sessionmaker: async_sessionmaker[AsyncSession], account_key: str, *, box: SecretBox
    ) -> PostgresSession:
        session = cls(sessionmaker, account_key, box=box)
        async with sessionmaker() as db:
            row = (
                await db.execute(
                    select(telegram_session).where(telegram_session.c.account_key == account_key)
                )
            ).one_or_none()
            if row is None:
                return session
            session._dc_id = row.dc_id
            session._server_address = row.server_address
            session._port = row.port
            session._auth_key = (
                AuthKey(box.open(row.auth_key, context=session._key_context))
                if row.auth_key
                else None
            )
            session._takeout_id = row.takeout_id
            states = await db.execute(
                select(telegram_update_state).where(
                    telegram_update_state.c.account_key == account_key
                )
            )
            for s in states:
                session._update_states[s.entity_id] = types.updates.State(
                    pts=s.pts, qts=s.qts, date=s.date, seq=s.seq, unread_count=0
                )
            entities = await db.execute(
                select(telegram_entity).where(telegram_entity.c.account_key == account_key)
            )
            for e in entities:
                entry = (e.id, e.hash, e.username, None, e.name)
                session._entities.add(entry)
                session._saved_entities.add(entry)
        return session

    def process_entities(self, tlo: Any) -> None:
        """Telethon's cache keeps every version of a user it has seen in a set, so which
        name was saved for a renamed user was a matter of set order: keep the newest row
        per id only, and no phone number."""
        rows = self._entities_to_rows(tlo)
        ids = {row[0] for row in rows}
        cached: set[tuple[Any, ...]] = self._entities  # type: ignore[has-type]
        kept = {row for row in cached if row[0] not in ids}
        self._entities = kept | {(i, h, u, None, n) for i, h, u, _phone, n in rows}

    def hold_update_state(self) -> None:
        """From now on Telethon's own update-state saves are ignored; only states given
        inside ``allow_update_state()`` (the listener's checkpoints) are kept."""
        self._holding = True

    @contextlib.contextmanager
    def allow_update_state(self) -> Iterator[None]:
        self._allowed = True
        try:
            yield
        finally:
            self._allowed = False

    def set_update_state(self, entity_id: int, state: Any) -> None:
        if self._holding and not self._allowed:
            return
        super().set_update_state(entity_id, state)

    @property
    def _key_context(self) -> str:
        # Binds the sealed key to its row: copied to another account it does not open.
        return f"telegram_session:{self.account_key}"

    @property
    def exists(self) -> bool:
        """Whether a login has stored a key for this account."""
        return self._auth_key is not None

    async def save(self) -> None:  # type: ignore[override]
        if self._server_address is None:
            return  # never connected: nothing worth keeping yet
        async with self._sessionmaker() as db, db.begin():
            await self._save_session_row(db)
            await self._save_update_states(db)
            await self._save_new_entities(db)

    async def close(self) -> None:  # type: ignore[override]
        await self.save()

    async def delete(self) -> None:  # type: ignore[override]
        async with self._sessionmaker() as db, db.begin():
            await db.execute(
                delete(telegram_session).where(telegram_session.c.account_key == self.account_key)
            )
        self._auth_key = None
        self._saved_entities.clear()

    async def _save_session_row(self, db: AsyncSession) -> None:
        values = {
            "dc_id": self._dc_id,
            "server_address": self._server_address,
            "port": self._port,
            "auth_key": (
                self._box.seal(self._auth_key.key, context=self._key_context)
                if self._auth_key
                else None
            ),
            "takeout_id": self._takeout_id,
            "updated_at": datetime.now(UTC),
        }
        stmt = insert(telegram_session).values(account_key=self.account_key, **values)
        await db.execute(stmt.on_conflict_do_update(index_elements=["account_key"], set_=values))

    async def _save_update_states(self, db: AsyncSession) -> None:
        rows = [
            {
                "account_key": self.account_key,
                "entity_id": entity_id,
                "pts": state.pts,
                "qts": state.qts,
                "date": _aware(state.date),
                "seq": state.seq,
            }
            for entity_id, state in self._update_states.items()
        ]
        if not rows:
            return
        stmt = insert(telegram_update_state).values(rows)
        await db.execute(
            stmt.on_conflict_do_update(
                index_elements=["account_key", "entity_id"],
                set_={c: stmt.excluded[c] for c in ("pts", "qts", "date", "seq")},
            )
        )

    async def _save_new_entities(self, db: AsyncSession) -> None:
        new = self._entities - self._saved_entities
        if not new:
            return
        # One row per id (a renamed user appears twice in the set): the last one wins.
        latest = {row[0]: row for row in new}
        rows = [
            {
                "account_key": self.account_key,
                "id": id_,
                "hash": hash_,
                "username": username,
                "phone": phone,
                "name": name,
            }
            for id_, hash_, username, phone, name in latest.values()
        ]
        stmt = insert(telegram_entity).values(rows)
        await db.execute(
            stmt.on_conflict_do_update(
                index_elements=["account_key", "id"],
                set_={c: stmt.excluded[c] for c in ("hash", "username", "phone", "name")},
            )
        )
        self._saved_entities |= new


def _aware(when: datetime) -> datetime:
    # Telethon stores a naive local datetime for channel states ("any datetime works").
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


async def reseal_auth_keys(
    sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox
) -> tuple[int, list[str]]:
    """Re-seal every stored auth key under the box's current key (`lull secrets rotate`).
    Each row opens with whichever key sealed it. Returns how many changed, and the
    accounts whose key opens with none of the box's keys (left as they are)."""
    changed, unreadable = 0, []
    async with sessionmaker() as db, db.begin():
        rows = await db.execute(
            select(telegram_session.c.account_key, telegram_session.c.auth_key)
            .where(telegram_session.c.auth_key.is_not(None))
            .with_for_update()
        )
        for account_key, stored in rows.all():
            if box.sealed_with_current(stored):
                continue
            context = f"telegram_session:{account_key}"
            try:
                plain = box.open(stored, context=context)
            except SecretKeyError:
                unreadable.append(account_key)
                continue
            await db.execute(
                update(telegram_session)
                .where(telegram_session.c.account_key == account_key)
                .values(auth_key=box.seal(plain, context=context))
            )
            changed += 1
    return changed, unreadable
