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
from datetime import datetime, timedelta
from getpass import getpass
from typing import Any

from telethon import TelegramClient

from app.bot_settings import BotSettings
from app.dev_stack import StackError
from app.fleet import ListenerFleet
from app.health import HealthServer
from app.settings import DEFAULT_ACCOUNT, Settings
from app.wiring import Runtime, secret_box
from channels.telegram.events import DEFAULT_PLACEHOLDERS, Placeholders
from channels.telegram.listener import TelegramListener
from channels.telegram.reply_typing import TypingIndicator, telethon_typing
from channels.telegram.sender import TelegramSender
from channels.telegram.session import PostgresSession
from channels.telegram.update_jobs import ListenerOptions
from db.locks import HeldLock, account_listener_lock
from db.queries import bots as db_bots
from inbound.accounts import register_account
from inbound.drain import wait_until_answered
from inbound.incoming import Account

log = logging.getLogger("lull.telegram")

CONNECT_TIMEOUT_SECONDS = 30.0
# Exit status when Telegram revoked the session: restarting will not help, a login will.
EXIT_SESSION_DEAD = 3
# Exit status when the account's lock was lost (Postgres restarted or failed over): the
# listener disconnected from Telegram at once; a restart takes the lock again if free.
EXIT_LOCK_LOST = 4
# A disabled account's listener waits for its open bursts at most the max wait plus this.
DISABLE_ANSWER_MARGIN_SECONDS = 120.0
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


def listener_options(settings: Settings, bot: BotSettings | None = None) -> ListenerOptions:
    """The listener's options: the account's own allow and deny lists where it has them,
    and its inline buttons."""
    bot = bot or BotSettings()
    return ListenerOptions(
        access=bot.access_lists(settings),
        buttons=bot.callback_buttons(),
        placeholders=Placeholders({**DEFAULT_PLACEHOLDERS, **settings.tg_placeholders}),
        handoff=settings.handoff_enabled,
        # 0 means until `lull resume`.
        handoff_minutes=settings.handoff_minutes or None,
        flow_ttl=timedelta(hours=settings.flow_ttl_hours),
    )


async def _connect(
    client: TelegramClient,
    settings: Settings,
    listener: TelegramListener,
    *,
    account_key: str,
    bot_token: str | None,
) -> None:
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
    if bot_token is not None:
        await client.sign_in(bot_token=bot_token)
        listener.mark_start()
        return
    await client.disconnect()
    raise StackError(
        f"no Telegram session for account {account_key!r}: set LULL_TG_BOT_TOKEN "
        "(or the bot's token through the admin API) for a bot, or run `lull login` for a "
        "user account"
    )


async def serve(
    rt: Runtime, stop: asyncio.Event, *, on_ready: Callable[[HealthServer], None] | None = None
) -> int:
    """`lull ingest`: one account (LULL_TG_ACCOUNT, or a LULL_TG_BOT_TOKEN alone), or, with
    neither set, every enabled account, shared with the other replicas (app/fleet.py)."""
    s = rt.settings
    if s.listener_account is None:
        return await serve_fleet(rt, stop, on_ready=on_ready)
    key = s.listener_account
    kind = "telegram_bot" if s.tg_bot_token is not None else "telegram_user"
    account = await register_account(rt.sessionmaker, key=key, kind=kind, display_name=key)
    async with rt.sessionmaker() as session:
        state = await db_bots.serving_state(session, account.id)
    if not state.enabled:
        raise StackError(
            f"account {account.key!r} is disabled (account.active is false); enable it to serve it"
        )

    # The lock first: a second listener must not even connect with the same auth key.
    async def not_yet() -> bool:
        return False

    # Not ready until connected: the listener's own checks replace this one then.
    checks = {**rt.dependency_checks(), "telegram": not_yet}
    async with (
        account_listener_lock(rt.engine, account.id) as lock,
        HealthServer(checks, host=s.health_host, port=s.health_port) as health,
    ):
        return await serve_account(
            rt, account, lock, stop, health, on_ready=on_ready, checks_suffix=""
        )


async def serve_fleet(
    rt: Runtime,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[HealthServer], None] | None = None,
    on_fleet: Callable[[ListenerFleet], None] | None = None,
) -> int:
    s = rt.settings
    async with HealthServer(
        rt.dependency_checks(), host=s.health_host, port=s.health_port
    ) as health:

        async def one(row: Any, lock: HeldLock, account_stop: asyncio.Event) -> int:
            account = Account(row.id, row.key)
            return await serve_account(
                rt, account, lock, account_stop, health, checks_suffix=f":{row.key}"
            )

        fleet = ListenerFleet(
            rt.engine,
            rt.sessionmaker,
            one,
            poll_seconds=s.fleet_poll_seconds,
            claim_after_seconds=s.fleet_claim_after_seconds,
        )
        if on_fleet is not None:
            on_fleet(fleet)
        if on_ready is not None:
            on_ready(health)
        log.info("listener fleet: serving every enabled account (no LULL_TG_ACCOUNT set)")
        await fleet.run(stop)
    return 0


async def serve_account(
    rt: Runtime,
    account: Account,
    lock: HeldLock,
    stop: asyncio.Event,
    health: HealthServer,
    *,
    on_ready: Callable[[HealthServer], None] | None = None,
    checks_suffix: str,
) -> int:
    """Serve one account whose listener lock is held: its settings, its Telethon client
    (built from its stored session and token), its listener and its send worker."""
    s = rt.settings
    async with rt.sessionmaker() as session:
        state = await db_bots.serving_state(session, account.id)
    bot = BotSettings.stored(state.settings)
    box = secret_box(s)
    token = s.tg_bot_token.get_secret_value() if s.tg_bot_token else None
    if token is None and state.bot_token is not None:
        token = box.open(state.bot_token, context=db_bots.token_context(account.key)).decode()
    session = await PostgresSession.load(rt.sessionmaker, account.key, box=box)
    client = build_client(session, s)
    ingestor = rt.build_ingestor(
        account,
        config=bot.conversation_config(rt.conversation_config()),
        commands=bot.command_names(s),
    )
    listener = TelegramListener(
        client, ingestor, session, rt.sessionmaker, options=listener_options(s, bot)
    )
    listener.start()  # before connecting: catch-up is dispatched during connect
    try:
        await _connect(client, s, listener, account_key=account.key, bot_token=token)
    except BaseException:
        listener.close()
        raise
    try:
        # Before identify lets any update through: see TelegramListener.mark_start.
        await listener.save_start()
        me = await client.get_me()
        listener.identify(me.id, user_account=not me.bot, username=me.username)
        log.info("listening as %s (id %s) for account %s", me.username, me.id, account.key)
        return await _serve_connected(
            rt,
            client,
            account,
            listener,
            lock,
            stop,
            health,
            on_ready=on_ready,
            suffix=checks_suffix,
            updated_at=state.updated_at,
        )
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
    health: HealthServer,
    *,
    on_ready: Callable[[HealthServer], None] | None,
    suffix: str,
    updated_at: datetime,
) -> int:
    s = rt.settings
    stopping = False

    async def telegram_ok() -> bool:
        return client.is_connected() and not stopping

    async def backlog_ok() -> bool:
        return listener.healthy_backlog

    checks = {f"telegram{suffix}": telegram_ok, f"updates{suffix}": backlog_ok}
    dead_session: list[Exception] = []

    def session_dead(exc: Exception) -> None:
        if not dead_session:
            log.critical(
                "Telegram refused the session of account %s (%s); stopping the listener. "
                "Log in again (`lull login`, or check the bot's token).",
                account.key,
                type(exc).__name__,
            )
        dead_session.append(exc)
        stop.set()

    sender = TelegramSender(client, on_session_dead=session_dead, on_sent=listener.note_sent)
    send_worker = rt.build_send_worker(account, sender)
    health.add_checks(checks)
    async with send_worker, contextlib.AsyncExitStack() as stack:
        stack.callback(health.remove_checks, list(checks))
        typing = TypingIndicator(rt.sessionmaker, account.id, telethon_typing(client))
        typing_task = asyncio.create_task(typing.run())
        # Cancelled on every way out, not only the clean one below.
        stack.callback(typing_task.cancel)
        disabled = asyncio.Event()
        follow = _follow_account(rt, account, listener, stop, disabled, updated_at)
        stack.callback(asyncio.create_task(follow).cancel)
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
        if disabled.is_set():
            # No listener will host this account's sends: answer what it holds first
            # (its open bursts need the send worker and the connection still up).
            within = max(s.drain_seconds, s.max_wait_seconds + DISABLE_ANSWER_MARGIN_SECONDS)
            unanswered = await wait_until_answered(rt.sessionmaker, account.id, within=within)
            if unanswered:
                log.error(
                    "account %s disabled with %d message(s) still unanswered after %.0f s; "
                    "they are answered once it is enabled again",
                    account.key,
                    unanswered,
                    within,
                )
        if disconnected.done():
            log.error("the Telegram connection ended; stopping")
            return 1
    return EXIT_SESSION_DEAD if dead_session else 0


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


async def _follow_account(
    rt: Runtime,
    account: Account,
    listener: TelegramListener,
    stop: asyncio.Event,
    disabled: asyncio.Event,
    updated_at: datetime,
) -> None:
    """Follow the account's changes while it is served: disabled or deleted, it is
    drained like a SIGTERM and the listener exits; changed settings apply at once (new
    conversations start with them, open ones take them at their next burst)."""
    s = rt.settings
    while True:
        await asyncio.sleep(ACTIVE_POLL_SECONDS)
        try:
            async with rt.sessionmaker() as session:
                state = await db_bots.serving_state(session, account.id)
        except Exception:
            continue  # Postgres down: readiness reports it; the lock watch acts on it
        if not state.enabled:
            log.warning(
                "account %s was disabled; answering what it holds, then stopping", account.key
            )
            disabled.set()
            stop.set()
            return
        if state.updated_at != updated_at:
            updated_at = state.updated_at
            bot = BotSettings.stored(state.settings)
            listener.ingestor.reconfigure(
                bot.conversation_config(rt.conversation_config()), bot.command_names(s)
            )
            listener.use_bot_options(bot.access_lists(s), bot.callback_buttons())
            log.info("account %s: settings changed; applied", account.key)


async def login(rt: Runtime, *, ask: Callable[[str], str] = input) -> str:
    """Create a user session interactively (phone, code, 2FA password) and store it.

    It takes the account's listener lock (refusing while a listener serves the account:
    one auth key, one session) and never moves the stored update state: Telethon does
    not receive updates here, and the state the next listener catches up from is kept
    as it was, so nothing that arrived meanwhile is skipped."""
    s = rt.settings
    key = s.tg_account or DEFAULT_ACCOUNT
    account = await register_account(
        rt.sessionmaker, key=key, kind="telegram_user", display_name=key
    )
    async with account_listener_lock(rt.engine, account.id):
        session = await PostgresSession.load(rt.sessionmaker, key, box=secret_box(s))
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
    return f"logged in as {me.first_name} (id {me.id}); session stored for {key!r}"
