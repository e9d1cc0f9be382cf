"""What the fake Telegram knows: users, basic groups, each user's message box and update log.

Models the documented behaviour Lull depends on:
- private chats and basic groups number messages per user: the same message has its own
  id in each participant's box, and every change to a box advances that user's ``pts``;
- ``messages.sendMessage`` de-duplicates a repeated ``random_id`` per (sender, peer): as
  documented, it answers with the earlier message, or ``RANDOM_ID_DUPLICATE`` while the
  first call is in flight (``duplicate_in_flight`` makes a repeat get that answer, the
  way a send Telegram took but never answered looks), refuses more than 4096 characters
  (``MESSAGE_TOO_LONG``) and empty text (``MESSAGE_EMPTY``), and can be told to answer
  ``FLOOD_WAIT_X``;
- ``updates.getDifference`` replays a user's box changes after a given ``pts``;
- forums (supergroups with topics) are channels, with a box and ``pts`` of their own
  (testkit/telegram_server/forums.py).

No IO here; `server.py` speaks MTProto and calls into this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from time import monotonic

from telethon.tl import types

from testkit.telegram_server.forums import ForumWorld
from testkit.telegram_server.model import (
    MAX_MESSAGE_CHARS,
    Account,
    Forum,
    Group,
    RpcRefusal,
    Visible,
    _photo,
    now,
    peer_key,
)


class World(ForumWorld):
    """All state of the fake Telegram. ``push`` delivers an update to a connected user."""

    def __init__(self) -> None:
        self.accounts: dict[int, Account] = {}
        self.groups: dict[int, Group] = {}
        self.forums: dict[int, Forum] = {}
        self.boxes: dict[int, list[Visible]] = {}
        # (sender, peer, random_id) → the sender-box message id of the first send.
        self.random_ids: dict[tuple[int, tuple[str, int], int], int] = {}
        # When each random_id was first used. Telegram's de-duplication window is finite;
        # with a window set, a repeat after it is a new message, so a check cannot lean
        # on the fake remembering forever (None: forever, as before).
        self.random_id_window: float | None = None
        self._random_id_at: dict[tuple[int, tuple[str, int], int], float] = {}
        # Per account: errors the next sendMessage calls answer with, in order.
        self.refusals: dict[int, list[RpcRefusal]] = {}
        # Per account: a flood wait on every send until (monotonic) time, the seconds it
        # names (a test lets an hour-long wait pass in seconds), and sends it refused.
        self.flooded: dict[int, tuple[float, int]] = {}
        self.flood_refused = 0
        # Whether a repeated random_id gets RANDOM_ID_DUPLICATE (the first call still in
        # flight) rather than the earlier message.
        self.duplicate_in_flight = False
        self.push: Callable[[int, types.TypeUpdates], None] = lambda user_id, updates: None
        # Tests watching what users' apps receive (e.g. "typing…" from the bot).
        self.push_observers: list[Callable[[int, types.Updates], None]] = []
        # Messages per global id: each participant's own id for it.
        self._copies: dict[int, dict[int, int]] = {}
        self._next_global = 1
        # Inline button presses: query id → (bot, user), until answered; answers given
        # per query id (Telegram takes one: a second gets QUERY_ID_INVALID).
        self.open_queries: dict[int, tuple[int, int]] = {}
        self.callback_answers: dict[int, list[tuple[str | None, bool]]] = {}
        self._next_query = 7_000_000_000_001

    # -- set-up ---------------------------------------------------------------------------
    def add_account(self, user_id: int, first_name: str, **kwargs: object) -> Account:
        account = Account(user_id, first_name, **kwargs)  # type: ignore[arg-type]
        self.accounts[user_id] = account
        self.boxes[user_id] = []
        return account

    def add_group(self, chat_id: int, title: str, members: list[int]) -> Group:
        group = Group(chat_id, title, members)
        self.groups[chat_id] = group
        return group

    def revoke(self, user_id: int) -> None:
        """The account's session is terminated (e.g. from another device)."""
        self.accounts[user_id].authorized = False

    def flood_wait_next(self, account_id: int, seconds: int, times: int = 1) -> None:
        waits = self.refusals.setdefault(account_id, [])
        waits.extend(RpcRefusal(420, f"FLOOD_WAIT_{seconds}") for _ in range(times))

    def flood_for(self, account_id: int, *, real_seconds: float, says_seconds: int) -> None:
        """Telegram's account-wide flood limit: every send is FLOOD_WAIT_``says_seconds``
        for ``real_seconds``."""
        self.flooded[account_id] = (monotonic() + real_seconds, says_seconds)

    # -- what users' apps do ----------------------------------------------------------------
    def send(
        self,
        sender_id: int,
        peer: types.TypePeer,
        text: str,
        *,
        random_id: int | None = None,
        reply_to: int | None = None,
        photo: bool = False,
        grouped_id: int | None = None,
        topic: int | None = None,
    ) -> int:
        """A message from ``sender_id`` to ``peer``; returns its id in the sender's box
        (a forum's own id in a forum, where ``topic`` or ``reply_to`` names its topic).
        With ``photo`` it carries a photo and ``text`` is its caption (may be empty)."""
        kind, target = peer_key(peer)
        if random_id is not None:
            waiting = self.refusals.get(sender_id)
            if waiting:
                raise waiting.pop(0)
            until, says = self.flooded.get(sender_id, (0.0, 0))
            if monotonic() < until:
                self.flood_refused += 1
                raise RpcRefusal(420, f"FLOOD_WAIT_{says}")
            key = (sender_id, (kind, target), random_id)
            earlier = self.random_ids.get(key)
            first_at = self._random_id_at.get(key, 0.0)
            if self.random_id_window is not None and monotonic() - first_at > self.random_id_window:
                earlier = None  # outside the window: Telegram has forgotten it
            if earlier is not None:
                if self.duplicate_in_flight:
                    raise RpcRefusal(500, "RANDOM_ID_DUPLICATE")
                return earlier  # the earlier message, not a second one
        if not text.strip() and not photo:
            raise RpcRefusal(400, "MESSAGE_EMPTY")
        if len(text) > MAX_MESSAGE_CHARS:
            raise RpcRefusal(400, "MESSAGE_TOO_LONG")
        if kind == "channel":
            message_id = self._forum_send(
                sender_id,
                target,
                text,
                reply_to=reply_to,
                topic=topic,
                photo=photo,
                grouped_id=grouped_id,
                answered_by_rpc=random_id is not None,
            )
            if random_id is not None:
                self.random_ids[(sender_id, (kind, target), random_id)] = message_id
                self._random_id_at[(sender_id, (kind, target), random_id)] = monotonic()
            return message_id
        members = self._participants(sender_id, kind, target)
        global_id = self._next_global
        self._next_global += 1
        copies = self._copies.setdefault(global_id, {})
        for owner in members:
            box_id = self._next_id(owner)
            copies[owner] = box_id
            seen_peer = (
                types.PeerUser(sender_id if owner != sender_id else target)
                if kind == "user"
                else types.PeerChat(target)
            )
            local_reply = self._translate(reply_to, sender_id, owner)
            visible = Visible(
                owner, box_id, sender_id, seen_peer, text, local_reply, photo, grouped_id
            )
            self.boxes[owner].append(visible)
            message = self._tl_message(visible)
            # The sending session gets its own message in the RPC answer, not as a push.
            own_send = owner == sender_id and random_id is not None
            update = types.UpdateNewMessage(message, pts=0, pts_count=1)
            self._record(owner, update, push=not own_send)
        if random_id is not None:
            self.random_ids[(sender_id, (kind, target), random_id)] = copies[sender_id]
            self._random_id_at[(sender_id, (kind, target), random_id)] = monotonic()
        return copies[sender_id]

    def edit(self, sender_id: int, peer: types.TypePeer, message_id: int, text: str) -> None:
        kind, target = peer_key(peer)
        if kind == "channel":
            self._forum_edit(sender_id, target, message_id, text)
            return
        global_id = self._global_of(sender_id, message_id)
        for owner, box_id in self._copies[global_id].items():
            old = next(m for m in self.boxes[owner] if m.id == box_id)
            new = replace(old, text=text)
            self.boxes[owner] = [new if m.id == box_id else m for m in self.boxes[owner]]
            message = self._tl_message(new, edited=True)
            self._record(owner, types.UpdateEditMessage(message, pts=0, pts_count=1))

    def delete(
        self, sender_id: int, message_ids: list[int], peer: types.TypePeer | None = None
    ) -> None:
        """Delete for everyone: in private chats and basic groups by the sender's box ids,
        in a forum (``peer``) by the forum's."""
        if peer is not None and peer_key(peer)[0] == "channel":
            self._forum_delete(sender_id, peer_key(peer)[1], message_ids)
            return
        per_owner: dict[int, list[int]] = {}
        for message_id in message_ids:
            global_id = self._global_of(sender_id, message_id)
            for owner, box_id in self._copies.pop(global_id).items():
                per_owner.setdefault(owner, []).append(box_id)
        for owner, ids in per_owner.items():
            self.boxes[owner] = [m for m in self.boxes[owner] if m.id not in ids]
            self._record(owner, types.UpdateDeleteMessages(ids, pts=0, pts_count=len(ids)))

    def typing(
        self,
        sender_id: int,
        peer: types.TypePeer,
        action: types.TypeSendMessageAction,
        topic: int | None = None,
    ) -> None:
        kind, target = peer_key(peer)
        if kind == "channel":
            self._forum_typing(sender_id, target, action, topic)
            return
        for owner in self._participants(sender_id, kind, target):
            if owner == sender_id:
                continue
            update: types.TypeUpdate
            if kind == "user":
                update = types.UpdateUserTyping(user_id=sender_id, action=action)
            else:
                update = types.UpdateChatUserTyping(
                    chat_id=target, from_id=types.PeerUser(sender_id), action=action
                )
            # Typing carries no pts: pushed only, never in getDifference.
            self._deliver(owner, self._envelope(owner, [update]))

    def press(self, user_id: int, bot_id: int, message_id: int, data: bytes) -> int:
        """The user presses an inline button of the bot's message ``message_id`` in their
        private chat; returns the query id. Pushed only (no pts): a bot that is offline
        never gets it, as on Telegram."""
        query_id = self._next_query
        self._next_query += 1
        self.open_queries[query_id] = (bot_id, user_id)
        update = types.UpdateBotCallbackQuery(
            query_id=query_id,
            user_id=user_id,
            peer=types.PeerUser(user_id),
            msg_id=message_id,
            chat_instance=user_id * 31 + bot_id,
            data=data,
        )
        self._deliver(bot_id, self._envelope(bot_id, [update]))
        return query_id

    def answer_callback(self, bot_id: int, query_id: int, message: str | None, alert: bool) -> None:
        if self.open_queries.get(query_id, (None,))[0] != bot_id:
            raise RpcRefusal(400, "QUERY_ID_INVALID")
        del self.open_queries[query_id]
        self.callback_answers.setdefault(query_id, []).append((message, alert))

    def own_typing(self, user_id: int, group_id: int, action: types.TypeSendMessageAction) -> None:
        """A user account's own chat action in a group, from another of its sessions (the
        owner's phone), pushed to the session under test as Telegram pushes any member's."""
        update = types.UpdateChatUserTyping(
            chat_id=group_id, from_id=types.PeerUser(user_id), action=action
        )
        self._deliver(user_id, self._envelope(user_id, [update]))

    # -- what a session asks for ------------------------------------------------------------
    def state(self, user_id: int) -> types.updates.State:
        return types.updates.State(
            pts=self.accounts[user_id].pts, qts=0, date=now(), seq=0, unread_count=0
        )

    def difference(self, user_id: int, pts: int) -> types.updates.TypeDifference:
        account = self.accounts[user_id]
        changes = [update for after, update in account.log if after > pts]
        # A member's forums are never in its difference: each is named, and the client
        # asks for its channel difference from the forum pts it saved.
        forums = self.forums_too_long(user_id)
        if not changes and not forums:
            return types.updates.DifferenceEmpty(date=now(), seq=0)
        new_messages = [u.message for u in changes if isinstance(u, types.UpdateNewMessage)]
        others = [u for u in changes if not isinstance(u, types.UpdateNewMessage)]
        return types.updates.Difference(
            new_messages=new_messages,
            new_encrypted_messages=[],
            other_updates=[*others, *forums],
            chats=[g.as_chat() for g in self.groups.values() if user_id in g.members]
            + self.member_channels(user_id),
            users=[a.as_user(viewer=user_id) for a in self.accounts.values()],
            state=self.state(user_id),
        )

    def visible_to(self, user_id: int, peer: types.TypePeer) -> list[Visible]:
        if isinstance(peer, types.PeerChannel):
            return self.forum_messages(peer.channel_id)
        return [m for m in self.boxes[user_id] if m.peer == peer]

    # -- internals ---------------------------------------------------------------------------
    def _participants(self, sender_id: int, kind: str, target: int) -> list[int]:
        if kind == "user":
            if target not in self.accounts:
                raise RpcRefusal(400, "PEER_ID_INVALID")
            return [sender_id] if target == sender_id else [sender_id, target]
        group = self.groups.get(target)
        if group is None or sender_id not in group.members:
            raise RpcRefusal(403, "CHAT_WRITE_FORBIDDEN")
        return list(group.members)

    def _next_id(self, owner: int) -> int:
        account = self.accounts[owner]
        box_id = account.next_message_id
        account.next_message_id += 1
        return box_id

    def _global_of(self, owner: int, box_id: int) -> int:
        for global_id, copies in self._copies.items():
            if copies.get(owner) == box_id:
                return global_id
        raise RpcRefusal(400, "MESSAGE_ID_INVALID")

    def _translate(self, box_id: int | None, from_owner: int, to_owner: int) -> int | None:
        if box_id is None:
            return None
        copies = self._copies.get(self._global_of(from_owner, box_id), {})
        return copies.get(to_owner)

    def _tl_message(self, visible: Visible, *, edited: bool = False) -> types.Message:
        out = visible.sender_id == visible.box_owner
        return types.Message(
            id=visible.id,
            peer_id=visible.peer,
            date=now(),
            message=visible.text,
            out=out,
            from_id=types.PeerUser(visible.sender_id),
            reply_to=types.MessageReplyHeader(reply_to_msg_id=visible.reply_to)
            if visible.reply_to
            else None,
            edit_date=now() if edited else None,
            media=_photo(visible.id) if visible.photo else None,
            grouped_id=visible.grouped_id,
            mentioned=self._mentions_owner(visible),
        )

    def _mentions_owner(self, visible: Visible) -> bool:
        """Telegram's ``mentioned`` flag on the owner's copy: the text names the owner's
        @username, or the message replies to one of the owner's messages."""
        if visible.sender_id == visible.box_owner:
            return False
        username = self.accounts[visible.box_owner].username
        if username and f"@{username.lower()}" in visible.text.lower().split():
            return True
        if visible.reply_to is None:
            return False
        replied = next((m for m in self.boxes[visible.box_owner] if m.id == visible.reply_to), None)
        return replied is not None and replied.sender_id == visible.box_owner

    def _record(self, owner: int, update: types.TypeUpdate, *, push: bool = True) -> None:
        """Advance the owner's pts for a box change, log it and push it."""
        account = self.accounts[owner]
        account.pts += update.pts_count
        update.pts = account.pts
        account.log.append((account.pts, update))
        if push:
            self._deliver(owner, self._envelope(owner, [update]))

    def _deliver(self, owner: int, updates: types.Updates) -> None:
        for observe in self.push_observers:
            observe(owner, updates)
        self.push(owner, updates)

    def _envelope(self, owner: int, updates: list[types.TypeUpdate]) -> types.Updates:
        # seq=0: Telethon treats a non-zero seq on a pts-less push as a gap (see RECIPES).
        return types.Updates(
            updates=updates,
            users=[a.as_user(viewer=owner) for a in self.accounts.values()],
            chats=[g.as_chat() for g in self.groups.values() if owner in g.members]
            + self.member_channels(owner),
            date=now(),
            seq=0,
        )
