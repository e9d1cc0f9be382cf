"""Forums in the fake Telegram: supergroups with topics, which Telegram models as channels.

What differs from a basic group, as documented and as Telethon relies on it:
- a forum has one message box for all members: a message has one id, numbered per
  forum, and every change advances the forum's own ``pts`` (not the members');
- its changes reach a member as ``updateNewChannelMessage``, ``updateEditChannelMessage``
  and ``updateDeleteChannelMessages``; typing as ``updateChannelUserTyping`` with the
  topic (``top_msg_id``);
- a member's ``updates.getDifference`` does not carry them: it names the forum in an
  ``updateChannelTooLong``, and the client then asks ``updates.getChannelDifference`` from
  the forum pts it last saw (so a listener that was down catches up from its saved pts);
- a message in a topic carries ``reply_to`` with ``forum_topic`` set: ``reply_to_msg_id``
  is the topic (its creating message's id), or the message replied to, with the topic in
  ``reply_to_top_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from telethon.tl import types

from testkit.telegram_server.model import Account, Forum, RpcRefusal, Visible, _photo, now


class ForumWorld:
    """The World's forums (a mixin: World supplies accounts and delivery)."""

    accounts: dict[int, Account]
    forums: dict[int, Forum]
    _deliver: Callable[[int, types.Updates], None]
    _envelope: Callable[[int, list[types.TypeUpdate]], types.Updates]

    def add_forum(self, channel_id: int, title: str, members: list[int], topics: int = 2) -> Forum:
        """A forum with ``topics`` topics (ids 2, 3, ...; 1 is the forum's creation)."""
        forum = Forum(channel_id, title, members)
        forum.next_message_id = 2
        for _ in range(topics):
            forum.topics.append(forum.next_message_id)
            forum.next_message_id += 1
        self.forums[channel_id] = forum
        return forum

    def forum_messages(self, channel_id: int, topic: int | None = None) -> list[Visible]:
        """The forum's messages, or those of one topic, in order."""
        messages = self.forums[channel_id].messages
        return [m for m in messages if topic is None or m.topic == topic]

    # -- what members do (World.send, edit, delete and typing call these) ---------------------
    def _forum_send(
        self,
        sender_id: int,
        channel_id: int,
        text: str,
        *,
        reply_to: int | None,
        topic: int | None,
        photo: bool,
        grouped_id: int | None,
        answered_by_rpc: bool,
    ) -> int:
        forum = self._member_forum(sender_id, channel_id)
        if topic is None:
            topic = self._topic_of(forum, reply_to)
        elif topic not in forum.topics:
            raise RpcRefusal(400, "TOPIC_ID_INVALID")
        message_id = forum.next_message_id
        forum.next_message_id += 1
        peer = types.PeerChannel(channel_id)
        visible = Visible(0, message_id, sender_id, peer, text, reply_to, photo, grouped_id, topic)
        forum.messages.append(visible)
        self._forum_record(
            forum,
            lambda owner: types.UpdateNewChannelMessage(
                self._channel_message(forum, visible, owner), pts=0, pts_count=1
            ),
            # The sending session gets its own message in the RPC answer, not as a push.
            skip=sender_id if answered_by_rpc else None,
        )
        return message_id

    def _forum_edit(self, sender_id: int, channel_id: int, message_id: int, text: str) -> None:
        forum = self._member_forum(sender_id, channel_id)
        old = next((m for m in forum.messages if m.id == message_id), None)
        if old is None or old.sender_id != sender_id:
            raise RpcRefusal(400, "MESSAGE_ID_INVALID")
        new = replace(old, text=text)
        forum.messages = [new if m.id == message_id else m for m in forum.messages]
        self._forum_record(
            forum,
            lambda owner: types.UpdateEditChannelMessage(
                self._channel_message(forum, new, owner, edited=True), pts=0, pts_count=1
            ),
        )

    def _forum_delete(self, sender_id: int, channel_id: int, message_ids: list[int]) -> None:
        forum = self._member_forum(sender_id, channel_id)
        gone = [m.id for m in forum.messages if m.id in message_ids]
        if not gone:
            raise RpcRefusal(400, "MESSAGE_ID_INVALID")
        forum.messages = [m for m in forum.messages if m.id not in gone]
        self._forum_record(
            forum,
            lambda owner: types.UpdateDeleteChannelMessages(
                channel_id, gone, pts=0, pts_count=len(gone)
            ),
        )

    def _forum_typing(
        self,
        sender_id: int,
        channel_id: int,
        action: types.TypeSendMessageAction,
        topic: int | None,
    ) -> None:
        forum = self._member_forum(sender_id, channel_id)
        update = types.UpdateChannelUserTyping(
            channel_id, types.PeerUser(sender_id), action, top_msg_id=topic
        )
        for owner in forum.members:
            if owner != sender_id:
                # Typing carries no pts: pushed only, never in a difference.
                self._deliver(owner, self._envelope(owner, [update]))

    # -- what a member's session asks for -----------------------------------------------------
    def channel_difference(
        self, user_id: int, channel_id: int, pts: int
    ) -> types.updates.TypeChannelDifference:
        forum = self._member_forum(user_id, channel_id)
        changes = [seen_by(user_id) for after, seen_by in forum.log if after > pts]
        if not changes:
            return types.updates.ChannelDifferenceEmpty(pts=forum.pts, final=True)
        news = [u.message for u in changes if isinstance(u, types.UpdateNewChannelMessage)]
        others = [u for u in changes if not isinstance(u, types.UpdateNewChannelMessage)]
        return types.updates.ChannelDifference(
            pts=forum.pts,
            new_messages=news,
            other_updates=others,
            chats=[forum.as_channel()],
            users=[a.as_user(viewer=user_id) for a in self.accounts.values()],
            final=True,
        )

    def forums_too_long(self, user_id: int) -> list[types.UpdateChannelTooLong]:
        """What a member's getDifference says of its forums: look at each."""
        return [
            types.UpdateChannelTooLong(channel_id=f.id, pts=f.pts)
            for f in self.forums.values()
            if user_id in f.members
        ]

    def member_channels(self, user_id: int) -> list[types.Channel]:
        return [f.as_channel() for f in self.forums.values() if user_id in f.members]

    # -- internals ---------------------------------------------------------------------------
    def _member_forum(self, user_id: int, channel_id: int) -> Forum:
        forum = self.forums.get(channel_id)
        if forum is None:
            raise RpcRefusal(400, "CHANNEL_INVALID")
        if user_id not in forum.members:
            raise RpcRefusal(403, "CHAT_WRITE_FORBIDDEN")
        return forum

    @staticmethod
    def _topic_of(forum: Forum, reply_to: int | None) -> int | None:
        if reply_to is None or reply_to in forum.topics:
            return reply_to
        replied = next((m for m in forum.messages if m.id == reply_to), None)
        if replied is None:
            raise RpcRefusal(400, "REPLY_TO_INVALID")
        return replied.topic

    def _forum_record(
        self,
        forum: Forum,
        update_for: Callable[[int], types.TypeUpdate],
        *,
        skip: int | None = None,
    ) -> None:
        """Advance the forum's pts for a change, log it and push it to every member, each
        seeing it as their own app would (``out``, ``mentioned``)."""
        forum.pts += update_for(forum.members[0]).pts_count
        at = forum.pts

        def seen_by(owner: int) -> types.TypeUpdate:
            update = update_for(owner)
            update.pts = at
            return update

        forum.log.append((at, seen_by))
        for owner in forum.members:
            if owner != skip:
                self._deliver(owner, self._envelope(owner, [seen_by(owner)]))

    def _channel_message(
        self, forum: Forum, visible: Visible, viewer: int, *, edited: bool = False
    ) -> types.Message:
        header = None
        if visible.topic is not None:
            replying = visible.reply_to not in (None, visible.topic)
            header = types.MessageReplyHeader(
                forum_topic=True,
                reply_to_msg_id=visible.reply_to if replying else visible.topic,
                reply_to_top_id=visible.topic if replying else None,
            )
        elif visible.reply_to is not None:
            header = types.MessageReplyHeader(reply_to_msg_id=visible.reply_to)
        return types.Message(
            id=visible.id,
            peer_id=visible.peer,
            date=now(),
            message=visible.text,
            out=visible.sender_id == viewer,
            from_id=types.PeerUser(visible.sender_id),
            reply_to=header,
            edit_date=now() if edited else None,
            media=_photo(visible.id) if visible.photo else None,
            grouped_id=visible.grouped_id,
            mentioned=self._forum_mentions(forum, visible, viewer),
        )

    def _forum_mentions(self, forum: Forum, visible: Visible, viewer: int) -> bool:
        if visible.sender_id == viewer:
            return False
        username = self.accounts[viewer].username
        if username and f"@{username.lower()}" in visible.text.lower().split():
            return True
        if visible.reply_to is None or visible.reply_to in forum.topics:
            return False
        replied = next((m for m in forum.messages if m.id == visible.reply_to), None)
        return replied is not None and replied.sender_id == viewer
