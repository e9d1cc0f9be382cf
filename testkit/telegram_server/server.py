"""A minimal MTProto server on 127.0.0.1 that real Telethon clients connect to.

`mtproto` (sans-IO, server role) handles transports, encryption, containers and acks;
Telethon's own TL classes parse requests and build answers, so the server always speaks
the client's exact layer. Each test account gets a pre-seeded auth key, so there is no
key exchange: the server maps the packet's auth_key_id to the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import struct
from datetime import timedelta
from typing import Any

from mtproto import ConnectionRole
from mtproto.session import session as mtproto_session
from mtproto.session.messages import Data, NeedAuthkey, TransportError
from mtproto.session.session import Session
from mtproto.transport.packets import EncryptedMessagePacket
from mtproto.utils import Int, Long
from telethon import functions
from telethon.crypto import AuthKey
from telethon.extensions import BinaryReader
from telethon.sessions import MemorySession
from telethon.tl import TLRequest, types
from telethon.tl.core import GzipPacked

from testkit.telegram_server.model import RpcRefusal, now
from testkit.telegram_server.world import World

log = logging.getLogger("testkit.telegram_server")

DC_ID = 2
RPC_RESULT = 0xF35C6D01
BOOL_TRUE = 0x997275B5
WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
)


# mtproto 0.3.1 answers a content-related gzip_packed message with bad_msg_notification 34,
# but Telethon gzips every large request (any message over ~500 characters), and Telegram
# accepts that. Let gzip_packed carry content-related requests.
mtproto_session._STRICTLRY_NOT_CONTENT_RELATED.discard(Int.write(GzipPacked.CONSTRUCTOR_ID, False))


class _ServerSession(Session):
    """Works around mtproto 0.3.1's server role (see RECIPES): accept the client's initial
    salt 0, and clear the packet parked on NeedAuthkey once it has been decrypted."""

    def check_salt(self, salt: int | bytes) -> bool:
        return True

    def next_event(self) -> Any:
        parked: EncryptedMessagePacket | None = self._pending_packet
        event = super().next_event()
        if parked is not None and self._auth_key_id == parked.auth_key_id:
            self._pending_packet = None
        return event


class _Connection:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.session = _ServerSession(ConnectionRole.SERVER)
        self.user_id: int | None = None

    def send(self, body: bytes, *, response: bool) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(self.session.send(body, content_related=True, response=response))


class FakeTelegramServer:
    def __init__(self, world: World | None = None) -> None:
        self.world = world or World()
        self.world.push = self._push
        self.port = 0
        self.requests: list[tuple[int, str]] = []  # (user, request type) for assertions
        # Sends to carry out but never answer: the sender's process dies not knowing.
        self.withhold_send_answers = 0
        # Requests refused because the session's key is not (or no longer) authorized.
        self.refused_unauthorized = 0
        self._server: asyncio.Server | None = None
        self._connections: list[_Connection] = []
        # TCP connections each account's key has opened so far (a reconnect adds one).
        self.connections_made: dict[int, int] = {}

    async def start(self) -> FakeTelegramServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop_connections(self, user_id: int | None = None) -> None:
        """Cut the TCP connections (of one user, or all) as a network failure would."""
        for conn in list(self._connections):
            if user_id is None or conn.user_id == user_id:
                conn.writer.close()

    def sessions_of(self, user_id: int) -> int:
        """How many TCP connections this account's key holds open right now."""
        return sum(1 for conn in self._connections if conn.user_id == user_id)

    def session_for(self, user_id: int) -> MemorySession:
        """A Telethon session already holding this account's key and our address."""
        session = MemorySession()
        self.seed(session, user_id)
        return session

    def seed(self, session: MemorySession, user_id: int) -> None:
        session.set_dc(DC_ID, "127.0.0.1", self.port)
        session.auth_key = AuthKey(self.world.accounts[user_id].auth_key)

    # -- connection handling ----------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(writer)
        self._connections.append(conn)
        try:
            while data := await reader.read(65536):
                conn.session.data_received(data)
                while (event := conn.session.next_event()) is not None:
                    if not self._on_event(conn, event):
                        return
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.remove(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _on_event(self, conn: _Connection, event: Any) -> bool:
        if isinstance(event, TransportError):
            return False
        if isinstance(event, NeedAuthkey):
            account = next(
                (
                    a
                    for a in self.world.accounts.values()
                    if _key_id(a.auth_key) == event.auth_key_id
                ),
                None,
            )
            if account is None:
                log.warning("unknown auth key %s; closing", event.auth_key_id)
                return False
            conn.user_id = account.id
            self.connections_made[account.id] = self.connections_made.get(account.id, 0) + 1
            conn.session.set_auth_key(account.auth_key)
            return True
        if isinstance(event, Data) and conn.user_id is not None:
            try:
                self._on_data(conn, conn.user_id, event)
            except Exception:  # a bug in the fake must be loud, not a silent hang
                log.exception("fake Telegram failed to answer a request")
                raise
        return True  # acks, new-session notices: nothing to answer

    def _on_data(self, conn: _Connection, user_id: int, event: Data) -> None:
        request = BinaryReader(event.data).tgread_object()
        # Telethon gzips large requests; its reader returns gzip_packed's inner bytes.
        if isinstance(request, GzipPacked):
            request = request.data
        if isinstance(request, bytes):
            request = BinaryReader(request).tgread_object()
        while isinstance(request, WRAPPERS):
            request = request.query
        self.requests.append((user_id, type(request).__name__))
        if isinstance(request, (functions.PingRequest, functions.PingDelayDisconnectRequest)):
            conn.send(bytes(types.Pong(event.message_id, request.ping_id)), response=True)
            return
        try:
            result = self._answer(user_id, request)
        except RpcRefusal as refusal:
            body = struct.pack("<Iq", RPC_RESULT, event.message_id) + bytes(
                types.RpcError(refusal.code, refusal.message)
            )
            conn.send(body, response=True)
            return
        sending = isinstance(request, functions.messages.SendMessageRequest)
        if sending and self.withhold_send_answers > 0:
            self.withhold_send_answers -= 1
            return
        header = struct.pack("<Iq", RPC_RESULT, event.message_id)
        conn.send(header + _serialize(result), response=True)

    def _push(self, user_id: int, updates: types.TypeUpdates) -> None:
        for conn in self._connections:
            if conn.user_id == user_id:
                conn.send(bytes(updates), response=False)

    # -- the RPCs a Telethon session makes ----------------------------------------------------
    def _answer(self, user_id: int, request: TLRequest) -> Any:
        world = self.world
        account = world.accounts[user_id]
        if not account.authorized:
            return self._answer_login(account, request)
        match request:
            case functions.help.GetConfigRequest():
                return self._config()
            case functions.users.GetUsersRequest(id=ids):
                return [self._user(user_id, i) for i in ids]
            case functions.updates.GetStateRequest():
                return world.state(user_id)
            case functions.updates.GetDifferenceRequest(pts=pts):
                return world.difference(user_id, pts)
            case functions.updates.GetChannelDifferenceRequest(channel=channel, pts=pts):
                return world.channel_difference(user_id, channel.channel_id, pts)
            case functions.messages.SendMessageRequest(peer=types.InputPeerChannel()):
                return self._send_in_forum(user_id, request)
            case functions.messages.SendMessageRequest():
                reply_to = getattr(request.reply_to, "reply_to_msg_id", None)
                peer = _peer_of(request.peer)
                before = world.accounts[user_id].pts
                message_id = world.send(
                    user_id, peer, request.message, random_id=request.random_id, reply_to=reply_to
                )
                account = world.accounts[user_id]
                return types.UpdateShortSentMessage(
                    id=message_id,
                    pts=account.pts,
                    pts_count=account.pts - before,
                    date=now(),
                    out=True,
                )
            case functions.messages.SetBotCallbackAnswerRequest(query_id=query_id):
                world.answer_callback(user_id, query_id, request.message, bool(request.alert))
                return True
            case functions.messages.SetTypingRequest(peer=peer, action=action):
                world.typing(user_id, _peer_of(peer), action, topic=request.top_msg_id)
                return True
            case _:
                raise RpcRefusal(400, f"METHOD_NOT_IMPLEMENTED_{type(request).__name__.upper()}")

    def _send_in_forum(self, user_id: int, request: Any) -> types.Updates:
        """A send to a forum is answered with the message id it got (by random_id) and
        the new message itself, as Telegram answers any channel send."""
        world = self.world
        channel_id = request.peer.channel_id
        reply = request.reply_to
        message_id = world.send(
            user_id,
            types.PeerChannel(channel_id),
            request.message,
            random_id=request.random_id,
            reply_to=getattr(reply, "reply_to_msg_id", None),
            topic=getattr(reply, "top_msg_id", None),
        )
        # The message as the sender sees it, at the pts it was made (a repeated random_id
        # gets the earlier message, as Telegram answers it).
        new = next(
            update
            for _, seen_by in reversed(world.forums[channel_id].log)
            if isinstance(update := seen_by(user_id), types.UpdateNewChannelMessage)
            and update.message.id == message_id
        )
        return types.Updates(
            updates=[types.UpdateMessageID(id=message_id, random_id=request.random_id), new],
            users=[a.as_user(viewer=user_id) for a in world.accounts.values()],
            chats=world.member_channels(user_id),
            date=now(),
            seq=0,
        )

    def _answer_login(self, account: Any, request: TLRequest) -> Any:
        """Before sign-in only the login RPCs work (2FA passwords are not modelled)."""
        match request:
            case functions.help.GetConfigRequest():
                return self._config()
            case functions.auth.SendCodeRequest():
                return types.auth.SentCode(
                    type=types.auth.SentCodeTypeApp(length=len(account.login_code)),
                    phone_code_hash="hash",
                )
            case functions.auth.SignInRequest(phone_code=code):
                if code != account.login_code:
                    raise RpcRefusal(400, "PHONE_CODE_INVALID")
            case functions.auth.ImportBotAuthorizationRequest(bot_auth_token=token):
                if account.bot_token is None or token != account.bot_token:
                    raise RpcRefusal(400, "ACCESS_TOKEN_INVALID")
            case _:
                self.refused_unauthorized += 1
                raise RpcRefusal(401, "AUTH_KEY_UNREGISTERED")
        account.authorized = True
        return types.auth.Authorization(user=account.as_user(viewer=account.id))

    def _user(self, viewer: int, wanted: Any) -> types.User:
        if isinstance(wanted, types.InputUserSelf):
            return self.world.accounts[viewer].as_user(viewer=viewer)
        account = self.world.accounts.get(getattr(wanted, "user_id", -1))
        if account is None:
            raise RpcRefusal(400, "USER_ID_INVALID")
        return account.as_user(viewer=viewer)

    def _config(self) -> types.Config:
        when = now()
        return types.Config(
            date=when,
            expires=when + timedelta(hours=1),
            test_mode=False,
            this_dc=DC_ID,
            dc_options=[types.DcOption(id=DC_ID, ip_address="127.0.0.1", port=self.port)],
            dc_txt_domain_name="",
            chat_size_max=200,
            megagroup_size_max=200_000,
            forwarded_count_max=100,
            online_update_period_ms=210_000,
            offline_blur_timeout_ms=5_000,
            offline_idle_timeout_ms=30_000,
            online_cloud_timeout_ms=300_000,
            notify_cloud_delay_ms=30_000,
            notify_default_delay_ms=1_500,
            push_chat_period_ms=60_000,
            push_chat_limit=2,
            edit_time_limit=172_800,
            revoke_time_limit=172_800,
            revoke_pm_time_limit=172_800,
            rating_e_decay=2_419_200,
            stickers_recent_limit=200,
            channels_read_media_period=604_800,
            call_receive_timeout_ms=20_000,
            call_ring_timeout_ms=90_000,
            call_connect_timeout_ms=30_000,
            call_packet_timeout_ms=10_000,
            me_url_prefix="https://t.me/",
            caption_length_max=1024,
            message_length_max=4096,
            webfile_dc_id=DC_ID,
        )


def _key_id(key: bytes) -> int:
    # As mtproto computes it (signed), so it compares equal to NeedAuthkey.auth_key_id.
    return Long.read_bytes(hashlib.sha1(key).digest()[-8:])


def _peer_of(input_peer: Any) -> types.TypePeer:
    if isinstance(input_peer, types.InputPeerUser):
        return types.PeerUser(input_peer.user_id)
    if isinstance(input_peer, types.InputPeerChat):
        return types.PeerChat(input_peer.chat_id)
    if isinstance(input_peer, types.InputPeerChannel):
        return types.PeerChannel(input_peer.channel_id)
    raise RpcRefusal(400, "PEER_ID_INVALID")


def _serialize(result: Any) -> bytes:
    if result is True:
        return struct.pack("<I", BOOL_TRUE)
    if isinstance(result, list):  # TL Vector
        return struct.pack("<Ii", 0x1CB5C415, len(result)) + b"".join(bytes(r) for r in result)
    return bytes(result)
