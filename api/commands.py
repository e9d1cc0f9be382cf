"""The `lull` commands of the admin API: `lull api` serves it, `lull users create` makes
its first admin (cli.py parses the arguments)."""

from __future__ import annotations

import argparse
import sys
from getpass import getpass

from api.serve import serve
from api.users import UserError, create_user
from app.settings import Settings
from app.wiring import database_only, lull_runtime, stop_on_signals


async def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    # Unset servers mean the embedded ones of a running `lull dev`: join, don't start.
    async with lull_runtime(settings, attach=True) as rt:
        print(
            f"Lull admin API on http://{settings.api_host}:{settings.api_port} (/docs)", flush=True
        )
        return await serve(rt, stop)


async def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass("password: ")
    try:
        async with database_only(settings) as sessionmaker:
            user_id = await create_user(
                sessionmaker, username=args.username, password=password, role=args.role
            )
    except UserError as exc:
        print(f"lull: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.username} ({args.role}) created, id {user_id}")
    return 0


API_COMMANDS = {
    "api": (cmd_api, "the admin HTTP API: bots, chats, operator messages (LULL_API_*)"),
    "users": (cmd_users, "create: add an operator of the admin API (the first admin)"),
}
