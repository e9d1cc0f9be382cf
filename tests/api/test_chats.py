"""Chats through the admin API: the list and its filters and pages, a chat's state and
transcript, an operator's message sent exactly once, the controls, failed bursts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select, update

from api.routes.chats import operator_burst_key
from db.tables import burst, conversation
from tests.api.conftest import Deployment, message, new_bot


async def bot_with_chats(
    dep: Deployment, admin: httpx.AsyncClient, chats: list[int], *, debounce: float = 30.0
) -> tuple[dict[str, Any], dict[int, int]]:
    """A bot whose listener is running (its sends served), with a message in each chat;
    returns the bot and each chat's id in the API."""
    bot = (await admin.post("/bots", json=new_bot())).json()
    await dep.serve_sends(bot)
    ingestor = dep.ingestor(bot, debounce=debounce)
    for chat in chats:
        # Senders are not the chat (as in a group), so the user filter is tested apart.
        await ingestor.message(message(chat, 1, f"hello from {chat}", sender=chat * 10))
    listed = (await admin.get("/chats", params={"bot": bot["id"], "limit": 500})).json()
    return bot, {c["chat_id"]: c["id"] for c in listed["chats"]}


async def until(check: Any, *, within: float = 20.0) -> Any:
    for _ in range(int(within / 0.1)):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("not within time")


async def test_the_list_filters_by_bot_user_and_activity_and_pages_by_cursor(
    deployment: Deployment,
) -> None:
    admin = await deployment.signed_in("admin")
    bot, ids = await bot_with_chats(deployment, admin, [101, 102, 103, 104, 105])
    other, other_ids = await bot_with_chats(deployment, admin, [201])
    # Spread the activity so the order is known: chat 101 oldest ... 105 newest.
    async with deployment.sessionmaker() as session, session.begin():
        for n, chat in enumerate([101, 102, 103, 104, 105]):
            await session.execute(
                update(conversation)
                .where(conversation.c.id == ids[chat])
                .values(last_message_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 5 - n))
            )
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"bot": bot["id"], "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await admin.get("/chats", params=params)).json()
        seen += [c["chat_id"] for c in page["chats"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [105, 104, 103, 102, 101]

    by_user = await admin.get("/chats", params={"bot": bot["id"], "user": 1030})
    assert [c["chat_id"] for c in by_user.json()["chats"]] == [103]  # 1030 wrote in 103 only
    # A private chat is its user's: its id is the user's.
    mine = await admin.get("/chats", params={"bot": bot["id"], "user": 104})
    assert [c["chat_id"] for c in mine.json()["chats"]] == [104]
    everyone = (await admin.get("/chats", params={"limit": 500})).json()["chats"]
    assert {101, 201} <= {c["chat_id"] for c in everyone}
    recent = await admin.get(
        "/chats",
        params={
            "bot": bot["id"],
            "active_since": (await admin.get(f"/chats/{ids[103]}")).json()["last_activity"],
        },
    )
    assert [c["chat_id"] for c in recent.json()["chats"]] == [105, 104, 103]
    assert (await admin.get("/chats", params={"cursor": "garbage!"})).status_code == 422
    assert (await admin.get("/chats", params={"phase": "sleeping"})).status_code == 422
    assert (await admin.get("/chats", params={"limit": 0})).status_code == 422
    assert (await admin.get("/chats", params={"bot": other["id"]})).json()["chats"][0][
        "id"
    ] == other_ids[201]


async def test_an_admin_send_goes_out_once_per_idempotency_key(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    bot, ids = await bot_with_chats(deployment, admin, [301])
    chat = ids[301]
    key = str(uuid.uuid4())
    first = await admin.post(
        f"/chats/{chat}/messages", json={"text": "We open at 9."}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "sent" and first.json()["repeated"] is False
    again = await admin.post(
        f"/chats/{chat}/messages", json={"text": "We open at 9."}, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert again.json()["burst_key"] == first.json()["burst_key"]
    assert deployment.sender.delivered.count((301, "We open at 9.")) == 1

    # The same key for another text is a mistake, not a second message.
    clash = await admin.post(
        f"/chats/{chat}/messages", json={"text": "We open at 10."}, headers={"Idempotency-Key": key}
    )
    assert clash.status_code == 422 and "Idempotency-Key" in clash.text
    assert (await admin.post(f"/chats/{chat}/messages", json={"text": "x"})).status_code == 422
    assert (
        await admin.post(
            f"/chats/{chat}/messages", json={"text": ""}, headers={"Idempotency-Key": "k2"}
        )
    ).status_code == 422

    shown = (await admin.get(f"/chats/{chat}/messages")).json()
    operator = [b for b in shown["bursts"] if b["reason"] == "operator"]
    assert len(operator) == 1
    assert operator[0]["reply_text"] == "We open at 9." and operator[0]["status"] == "sent"
    assert operator[0]["author"].startswith("user:admin-")
    assert [m["text"] for m in shown["messages"]] == ["hello from 301"]
    audit = (await admin.get("/audit", params={"bot": bot["id"]})).json()
    assert [a["action"] for a in audit].count("chat.send") == 1


async def test_concurrent_admin_sends_with_one_key_deliver_once(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    _, ids = await bot_with_chats(deployment, admin, [311])
    headers = {"Idempotency-Key": "double-click"}
    answers = await asyncio.gather(
        *(
            admin.post(f"/chats/{ids[311]}/messages", json={"text": "On my way"}, headers=headers)
            for _ in range(5)
        )
    )
    assert {a.status_code for a in answers} == {200}
    assert sorted(a.json()["repeated"] for a in answers) == [False, True, True, True, True]
    assert deployment.sender.delivered.count((311, "On my way")) == 1
    async with deployment.sessionmaker() as session:
        bursts = (
            await session.execute(
                select(func.count()).where(
                    burst.c.conversation_id == ids[311], burst.c.reason == "operator"
                )
            )
        ).scalar_one()
    assert bursts == 1


async def test_the_controls_drive_the_conversation_and_the_state_shows_it(
    deployment: Deployment,
) -> None:
    admin = await deployment.signed_in("admin")
    bot, ids = await bot_with_chats(deployment, admin, [401])
    chat = ids[401]
    detail = (await admin.get(f"/chats/{chat}")).json()
    assert detail["phase"] == "active" and detail["state"]["buffered"] == 1
    assert detail["workflow_id"].startswith(f"conversation/{bot['key']}/c-")
    # Named by the chat's keyed hash, never its Telegram id.
    assert detail["workflow_id"].split("/")[-1] == "c-" + detail["chat_ref"]
    assert detail["chat_ref"] != "401" and len(detail["chat_ref"]) == 16

    flushed = await admin.post(f"/chats/{chat}/flush")
    assert flushed.status_code == 200
    await until(lambda: _has(deployment, (401, "[echo: 1 message] hello from 401")))

    paused = await admin.post(f"/chats/{chat}/pause", json={"minutes": 5})
    assert paused.status_code == 200 and paused.json()["paused"] is True

    async def listed_paused() -> bool:
        page = await admin.get("/chats", params={"bot": bot["id"], "phase": "paused"})
        return [c["id"] for c in page.json()["chats"]] == [chat]

    await until(listed_paused)
    assert (await admin.get(f"/chats/{chat}")).json()["phase"] == "paused"
    assert (await admin.post(f"/chats/{chat}/pause", json={"minutes": -1})).status_code == 422
    resumed = await admin.post(f"/chats/{chat}/resume")
    assert resumed.json()["paused"] is False

    await deployment.ingestor(bot).message(message(401, 2, "one more"))
    cleared = await admin.post(f"/chats/{chat}/clear")
    assert cleared.status_code == 200 and cleared.json()["buffered"] == 0
    actions = [a["action"] for a in (await admin.get("/audit", params={"bot": bot["id"]})).json()]
    assert actions[:4] == ["chat.clear", "chat.resume", "chat.pause", "chat.flush"]

    shown = (await admin.get(f"/chats/{chat}/messages")).json()
    answered = [b for b in shown["bursts"] if b["reply_text"]]
    assert answered[0]["reason"] == "manual" and answered[0]["model"] == "echo"
    assert [m["text"] for m in shown["messages"]] == ["hello from 401", "one more"]


async def _has(dep: Deployment, delivery: tuple[int, str]) -> bool:
    return delivery in dep.sender.delivered


async def test_a_failed_send_is_listed_and_retried(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    bot, ids = await bot_with_chats(deployment, admin, [501])
    deployment.sender.forbidden = True
    refused = await admin.post(
        f"/chats/{ids[501]}/messages", json={"text": "Hello?"}, headers={"Idempotency-Key": "a"}
    )
    assert refused.status_code == 502 and "failed-bursts" in refused.text
    failed = (await admin.get("/failed-bursts", params={"bot": bot["id"]})).json()
    key = operator_burst_key(ids[501], "a")
    assert [(f["burst_key"], f["error_type"]) for f in failed] == [(key, "TelegramRejected")]
    assert "Hello?" not in str(failed)  # no text in the failure list

    deployment.sender.forbidden = False
    retried = await admin.post(f"/failed-bursts/{key}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "started"
    await until(lambda: _has(deployment, (501, "Hello?")))

    async def gone() -> bool:
        return not (await admin.get("/failed-bursts", params={"bot": bot["id"]})).json()

    await until(gone)
    assert (await admin.post("/failed-bursts/no-such-burst/retry")).status_code == 404
    assert (await admin.get("/failed-bursts", params={"bot": 987654321})).status_code == 404


async def test_a_disabled_bot_gets_no_admin_send(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    bot, ids = await bot_with_chats(deployment, admin, [601])
    await admin.post(f"/bots/{bot['id']}/disable")
    refused = await admin.post(
        f"/chats/{ids[601]}/messages", json={"text": "hi"}, headers={"Idempotency-Key": "z"}
    )
    assert refused.status_code == 409 and "disabled" in refused.text
    assert (601, "hi") not in deployment.sender.delivered
