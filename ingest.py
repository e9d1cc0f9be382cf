"""The Telegram listener process (`lull ingest`) and `lull login`.

This process owns the account's one MTProto connection: it takes the account's advisory
lock before connecting (an auth key used twice at once gets revoked), feeds updates to the
ingest seam, and hosts the account's `send_reply` activity on its own task queue, using
the same connected client.

Shutdown order on SIGTERM: stop the health check reporting ready, drain the listener's
in-flight updates and checkpoint the update state, let the send worker finish its sends,
then disconnect (Telethon's ``disconnect()`` cancels running handlers, hence drain first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from getpass import getpass

from telethon import TelegramClient

from app.dev_stack import StackError
from app.health import HealthServer
from app.settings import Settings
from app.wiring import Runtime, secret_box
from channels.telegram.events import DEFAULT_PLACEHOLDERS, Placeholders
from channels.telegram.filters import AccessLists
from channels.telegram.listener import TelegramListener
from channels.telegram.reply_typing import TypingIndicator, telethon_typing
from channels.telegram.sender import TelegramSender
from channels.telegram.session import PostgresSession
from channels.telegram.update_jobs import ListenerOptions
from db.locks import HeldLock, account_listener_lock
from db.queries import accounts as db_accounts
from inbound.accounts import register_account
from inbound.incoming import Account

log = logging.getLogger("lull.telegram")

CONNECT_TIMEOUT_SECONDS = 30.0
# Exit status when Telegram revoked the session: restarting will not help, a login will.
EXIT_SESSION_DEAD = 3
# Exit status when the account's lock was lost (Postgres restarted or failed over): the
# listener disconnected from Telegram at once; a restart takes the lock again if free.
EXIT_LOCK_LOST = 4
# How often a serving listener checks that its account is still enabled.
ACTIVE_POLL_SECONDS = 5.0
# Telegram's own DC 2; only used when no session and no LULL_TG_SERVER say otherwise.
DEFAULT_DC = 2


def build_client(
    session: PostgresSession, settings: Settings, *, receive_updates: bool = True
) -> TelegramClient:
    """Telethon configured so that Temporal, not Telethon, retries sends: one attempt per
    call and the real error raised (see RECIPES). Reconnects are Telethon's (forever).
    Without ``receive_updates`` (a login) Telethon neither fetches nor applies updates."""
    if settings.tg_api_id is None or settings.tg_api_hash is None:
        raise StackError("Telegram needs LULL_TG_API_ID and LULL_TG_API_HASH (my.telegram.org)")
    if settings.tg_server:
        host, port = settings.tg_server.rsplit(":", 1)
        session.set_dc(session.dc_id or DEFAULT_DC, host, int(port))
    return TelegramClient(
        session,
        settings.tg_api_id,
        settings.tg_api_hash.get_secret_value(),
        flood_sleep_threshold=0,
        request_retries=0,
        raise_last_call_error=True,
        connection_retries=-1,
        retry_delay=1,
        catch_up=receive_updates,
        receive_updates=receive_updates,
    )


def listener_options(settings: Settings) -> ListenerOptions:
    return ListenerOptions(
        access=AccessLists(
            allow_users=settings.id_list("tg_allow_users"),
            deny_users=settings.id_list("tg_deny_users"),
            allow_chats=settings.id_list("tg_allow_chats"),
            deny_chats=settings.id_list("tg_deny_chats"),
        ),
        placeholders=Placeholders({**DEFAULT_PLACEHOLDERS, **settings.tg_placeholders}),
        handoff=settings.handoff_enabled,
        # 0 means until `lull resume`.
        handoff_minutes=settings.handoff_minutes or None,
        flow_ttl=timedelta(hours=settings.flow_ttl_hours),
    )


async def _connect(client: TelegramClient, settings: Settings, listener: TelegramListener) -> None:
    """Connect and log in; ``listener`` marks the update state Telethon starts from."""
    try:
        # In this task, not wait_for's own (Python 3.11): mark_start must run before
        # Telethon's update loop takes its first step.
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            await client.connect()
            listener.mark_start()
    except TimeoutError:
        raise StackError(
            f"could not reach Telegram within {CONNECT_TIMEOUT_SECONDS:g} s"
            + (f" at {settings.tg_server}" if settings.tg_server else "")
        ) from None
    if await client.is_user_authorized():
        return
    if settings.tg_bot_token is not None:
        await client.sign_in(bot_token=settings.tg_bot_token.get_secret_value())
        listener.mark_start()
        return
    await client.disconnect()
    raise StackError(
        f"no Telegram session for account {settings.tg_account!r}: set LULL_TG_BOT_TOKEN "
        "for a bot, or run `lull login` for a user account"
    )


async def serve(
    rt: Runtime, stop: asyncio.Event, *, on_ready: Callable[[HealthServer], None] | None = None
) -> int:
    s = rt.settings
    kind = "telegram_bot" if s.tg_bot_token is not None else "telegram_user"
    account = await register_account(
        rt.sessionmaker, key=s.tg_account, kind=kind, display_name=s.tg_account
    )
    if not await _is_active(rt, account):
        raise StackError(
            f"account {account.key!r} is disabled (account.active is false); enable it to serve it"
        )
    # The lock first: a second listener must not even connect with the same auth key.
    async with account_listener_lock(rt.engine, account.id) as lock:
        session = await PostgresSession.load(rt.sessionmaker, s.tg_account, box=secret_box(s))
        client = build_client(session, s)
        ingestor = rt.build_ingestor(account)
        listener = TelegramListener(
            client, ingestor, session, rt.sessionmaker, options=listener_options(s)
        )
        listener.start()  # before connecting: catch-up is dispatched during connect
        try:
            await _connect(client, s, listener)
        except BaseException:
            listener.close()
            raise
        try:
            # Before identify lets any update through: see TelegramListener.mark_start.
            await listener.save_start()
            me = await client.get_me()
            listener.identify(me.id, user_account=not me.bot, username=me.username)
            log.info("listening as %s (id %s) for account %s", me.username, me.id, account.key)
            return await _serve_connected(rt, client, account, listener, lock, stop, on_ready)
        finally:
            listener.close()
            await client.disconnect()


async def _serve_connected(
    rt: Runtime,
    client: TelegramClient,
    account: Account,
    listener: TelegramListener,
    lock: HeldLock,
    stop: asyncio.Event,
    on_ready: Callable[[HealthServer], None] | None,
) -> int:
    s = rt.settings
    stopping = False

    async def telegram_ok() -> bool:
        return client.is_connected() and not stopping

    async def backlog_ok() -> bool:
        return listener.healthy_backlog

    checks = {"telegram": telegram_ok, **rt.dependency_checks(), "updates": backlog_ok}
    dead_session: list[Exception] = []

    def session_dead(exc: Exception) -> None:
        if not dead_session:
            log.critical(
                "Telegram refused the session of account %s (%s); stopping the listener. "
                "Log in again (`lull login`, or check LULL_TG_BOT_TOKEN).",
                account.key,
                type(exc).__name__,
            )
        dead_session.append(exc)
        stop.set()

    sender = TelegramSender(client, on_session_dead=session_dead, on_sent=listener.note_sent)
    send_worker = rt.build_send_worker(account, sender)
    async with (
        HealthServer(checks, host=s.health_host, port=s.health_port) as health,
        send_worker,
        contextlib.AsyncExitStack() as stack,
    ):
        typing = TypingIndicator(rt.sessionmaker, account.id, telethon_typing(client))
        typing_task = asyncio.create_task(typing.run())
        # Cancelled on every way out, not only the clean one below.
        stack.callback(typing_task.cancel)
        stack.callback(asyncio.create_task(_stop_when_disabled(rt, account, stop)).cancel)
        stack.callback(asyncio.create_task(_sweep_unflushed(rt, listener)).cancel)
        if on_ready is not None:
            on_ready(health)
        disconnected = asyncio.ensure_future(client.disconnected)
        waiting = asyncio.ensure_future(stop.wait())
        lock_lost = asyncio.ensure_future(lock.lost.wait())
        await asyncio.wait({disconnected, waiting, lock_lost}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        typing_task.cancel()
        stopping = True
        if lock.lost.is_set():
            # Another process may take the account now: stop using the auth key at once,
            # before any drain (updates not handed over are replayed by catch-up).
            log.critical("account %s: listener lock lost; disconnecting from Telegram", account.key)
            listener.close()
            await client.disconnect()
            return EXIT_LOCK_LOST
        lock_lost.cancel()
        left = await listener.drain(within=s.drain_seconds)
        if left:
            log.error(
                "%s updates still in flight after %s s; catch-up will replay them",
                left,
                s.drain_seconds,
            )
        if disconnected.done():
            log.error("the Telegram connection ended; stopping")
            return 1
    return EXIT_SESSION_DEAD if dead_session else 0


async def _is_active(rt: Runtime, account: Account) -> bool:
    async with rt.sessionmaker() as session:
        return await db_accounts.account_active(session, account.id)


async def _sweep_unflushed(rt: Runtime, listener: TelegramListener) -> None:
    """Signal again, every LULL_UNFLUSHED_SWEEP_SECONDS, messages recorded long ago that no
    burst took (their signal was lost): recorded is a promise to answer, whatever Temporal
    forgot."""
    every = rt.settings.unflushed_sweep_seconds
    older_than = timedelta(seconds=rt.settings.max_wait_seconds + every)
    # A burst unfinished that long may have been stranded by a run lost mid-burst. The
    # sweep asks the chat's run before it resends anything (a live run answering the
    # burst has its ids, and is sent nothing), so it need not wait out the outage windows
    # a live run may spend on it: a lost run's burst is answered about as soon as a lost
    # signal's message.
    stranded_after = older_than
    while True:
        await asyncio.sleep(every)
        try:
            sent = await listener.ingestor.resend_unflushed(
                older_than=older_than, stranded_after=stranded_after
            )
        except Exception as exc:  # Postgres or Temporal down: readiness says so; next round
            log.debug("sweep for unflushed messages skipped: %s", type(exc).__name__)
            continue
        if sent:
            # Most are still buffered behind a slow burst (their run ignores a seen id);
            # a run that had lost one warns of it.
            log.info("signalled %d recorded message(s) not yet in a burst again", sent)


async def _stop_when_disabled(rt: Runtime, account: Account, stop: asyncio.Event) -> None:
    """A disabled account stops being served: drained like a SIGTERM, then the listener
    exits (and refuses to start while it stays disabled)."""
    while True:
        await asyncio.sleep(ACTIVE_POLL_SECONDS)
        try:
            active = await _is_active(rt, account)
        except Exception:
            continue  # Postgres down: readiness reports it; the lock watch acts on it
        if not active:
            log.warning("account %s was disabled; draining and stopping", account.key)
            stop.set()
            return


async def login(rt: Runtime, *, ask: Callable[[str], str] = input) -> str:
    """Create a user session interactively (phone, code, 2FA password) and store it.

    It takes the account's listener lock (refusing while a listener serves the account:
    one auth key, one session) and never moves the stored update state: Telethon does
    not receive updates here, and the state the next listener catches up from is kept
    as it was, so nothing that arrived meanwhile is skipped."""
    s = rt.settings
    account = await register_account(
        rt.sessionmaker, key=s.tg_account, kind="telegram_user", display_name=s.tg_account
    )
    async with account_listener_lock(rt.engine, account.id):
        session = await PostgresSession.load(rt.sessionmaker, s.tg_account, box=secret_box(s))
        session.hold_update_state()
        client = build_client(session, s, receive_updates=False)
        await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_SECONDS)
        try:
            await client.start(
                phone=lambda: ask("phone number (international format): "),
                code_callback=lambda: ask("login code Telegram sent you: "),
                password=lambda: getpass("two-step verification password: "),
            )
            me = await client.get_me()
            await session.save()
        finally:
            await client.disconnect()
    return f"logged in as {me.first_name} (id {me.id}); session stored for {s.tg_account!r}"
