"""Bots through the admin API: create, read, change, enable, disable, delete, purge;
bad bodies and unknown ids; the token sealed and never shown; every change audited."""

from __future__ import annotations

from sqlalchemy import func, select

from db.queries.bots import token_context
from db.tables import account, audit, conversation, message
from tests.api.conftest import Deployment, new_bot
from tests.api.conftest import message as incoming

TOKEN = "123456789:AAEhBOweik6ad6PsVMRxjeQKKuT3-abcdef"


async def audited(dep: Deployment, bot_id: int) -> list[str]:
    async with dep.sessionmaker() as session:
        rows = await session.execute(
            select(audit.c.action).where(audit.c.account_id == bot_id).order_by(audit.c.id)
        )
        return [row.action for row in rows]


async def test_a_bot_is_created_read_changed_and_listed(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    body = new_bot(
        bot_token=TOKEN,
        start_text="Welcome to the salon!",
        model="gpt-4o",
        system_prompt="You book haircuts.",
        settings={"debounce_seconds": 3, "mid_reply": "queue", "deny_users": [666]},
    )
    created = await admin.post("/bots", json=body)
    assert created.status_code == 201, created.text
    bot = created.json()
    assert bot["key"] == body["key"] and bot["kind"] == "telegram_bot" and bot["active"]
    assert bot["has_token"] is True and "bot_token" not in bot and TOKEN not in created.text
    assert bot["settings"]["debounce_seconds"] == 3 and bot["settings"]["deny_users"] == [666]
    assert bot["help_text"] == "Just write; I answer when you pause."  # the default

    # PUT changes only what it names.
    changed = await admin.put(f"/bots/{bot['id']}", json={"model": "gpt-4.1", "name": "Salon"})
    assert changed.status_code == 200
    assert (changed.json()["model"], changed.json()["name"]) == ("gpt-4.1", "Salon")
    assert changed.json()["system_prompt"] == "You book haircuts."
    assert changed.json()["settings"]["debounce_seconds"] == 3
    assert changed.json()["updated_at"] > bot["updated_at"]
    assert (await admin.get(f"/bots/{bot['id']}")).json() == changed.json()
    assert bot["id"] in [b["id"] for b in (await admin.get("/bots")).json()]

    # The token is sealed, bound to this bot's key: not its plaintext, and not openable
    # as another bot's.
    async with deployment.sessionmaker() as session:
        sealed = (
            await session.execute(select(account.c.bot_token).where(account.c.id == bot["id"]))
        ).scalar_one()
    assert TOKEN.encode() not in sealed
    box = deployment.ctx.box
    assert box.open(sealed, context=token_context(bot["key"])) == TOKEN.encode()
    try:
        box.open(sealed, context=token_context("another"))
    except Exception:
        pass
    else:
        raise AssertionError("a token opened under another bot's key")
    assert await audited(deployment, bot["id"]) == ["bot.create", "bot.update"]


async def test_bad_bodies_are_422s_that_name_the_field_and_change_nothing(
    deployment: Deployment,
) -> None:
    admin = await deployment.signed_in("admin")
    bot = (await admin.post("/bots", json=new_bot())).json()
    cases = [
        ({"model": "x", "colour": "red"}, "colour"),
        ({"bot_token": "not-a-token"}, "bot_token"),
        ({"settings": {"debounce_seconds": 0}}, "debounce_seconds"),
        ({"settings": {"debounce_seconds": "soon"}}, "debounce_seconds"),
        ({"settings": {"max_wait_seconds": 10**9}}, "max_wait_seconds"),
        ({"settings": {"mid_reply": "sometimes"}}, "mid_reply"),
        ({"settings": {"commands": ["book now"]}}, "commands"),
        ({"settings": {"allow_users": ["alice"]}}, "allow_users"),
        ({"start_text": ""}, "start_text"),
        ({"settings": {"buttons": {"x" * 65: {"text": "a"}}}}, "button data"),
        ({"settings": {"buttons": {"ok": {"colour": "red"}}}}, "colour"),
        ({"model": "x", "active": "maybe"}, "active"),
    ]
    for body, field in cases:
        answer = await admin.put(f"/bots/{bot['id']}", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text, (body, answer.text)
    assert (await admin.post("/bots", json=new_bot(key="has space"))).status_code == 422
    assert (await admin.post("/bots", json={"name": "no key"})).status_code == 422
    assert (await admin.put(f"/bots/{bot['id']}", content=b"{not json")).status_code == 422
    # Nothing of those was applied.
    assert (await admin.get(f"/bots/{bot['id']}")).json() == bot
    assert await audited(deployment, bot["id"]) == ["bot.create"]


async def test_unknown_bots_are_404s_and_a_taken_key_is_a_409(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    for method, path in [
        ("GET", "/bots/987654321"),
        ("PUT", "/bots/987654321"),
        ("POST", "/bots/987654321/enable"),
        ("POST", "/bots/987654321/disable"),
        ("DELETE", "/bots/987654321"),
        ("GET", "/chats/987654321"),
        ("GET", "/chats/987654321/messages"),
        ("POST", "/chats/987654321/flush"),
    ]:
        answer = await admin.request(method, path, json={} if method == "PUT" else None)
        assert answer.status_code == 404, (method, path, answer.text)
    assert (await admin.get("/bots/not-a-number")).status_code == 422
    body = new_bot()
    assert (await admin.post("/bots", json=body)).status_code == 201
    again = await admin.post("/bots", json=body)
    assert again.status_code == 409 and body["key"] in again.text


async def test_enable_disable_delete_and_purge(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    bot = (await admin.post("/bots", json=new_bot())).json()
    # A conversation with a message: the transcript that delete keeps and purge removes.
    await deployment.ingestor(bot).message(incoming(4242, 1, "hello"))

    assert (await admin.post(f"/bots/{bot['id']}/disable")).json()["active"] is False
    assert (await admin.post(f"/bots/{bot['id']}/enable")).json()["active"] is True
    refused = await admin.delete(f"/bots/{bot['id']}?purge=true")
    assert refused.status_code == 409 and "disable the bot first" in refused.text

    assert (await admin.delete(f"/bots/{bot['id']}")).status_code == 204
    assert (await admin.get(f"/bots/{bot['id']}")).status_code == 404
    assert bot["id"] not in [b["id"] for b in (await admin.get("/bots")).json()]
    async with deployment.sessionmaker() as session:
        kept = (
            await session.execute(
                select(func.count()).select_from(message).where(message.c.account_id == bot["id"])
            )
        ).scalar_one()
    assert kept == 1  # the transcript stays

    other = (await admin.post("/bots", json=new_bot())).json()
    await deployment.ingestor(other).message(incoming(4343, 1, "hi there"))
    await admin.post(f"/bots/{other['id']}/disable")
    assert (await admin.delete(f"/bots/{other['id']}?purge=true")).status_code == 204
    async with deployment.sessionmaker() as session:
        left = [
            (
                await session.execute(
                    select(func.count()).select_from(table).where(column == other["id"])
                )
            ).scalar_one()
            for table, column in (
                (message, message.c.account_id),
                (conversation, conversation.c.account_id),
                (account, account.c.id),
            )
        ]
    assert left == [0, 0, 0]
    assert await audited(deployment, other["id"]) == ["bot.create", "bot.disable", "bot.purge"]
    assert await audited(deployment, bot["id"]) == [
        "bot.create",
        "bot.disable",
        "bot.enable",
        "bot.delete",
    ]
