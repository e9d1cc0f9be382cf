"""Sign-in, sessions, API keys, roles and rate limits of the admin API."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text

from api.rate_limit import RateLimiter
from db.tables import api_key, audit, operator
from tests.api.conftest import PASSWORD, Deployment, new_bot


async def test_a_login_sets_a_strict_httponly_cookie_and_a_wrong_password_is_refused(
    deployment: Deployment,
) -> None:
    name = await deployment.user("viewer")
    async with deployment.client() as http:
        wrong = await http.post("/auth/login", json={"username": name, "password": "nope"})
        assert wrong.status_code == 401 and "wrong username or password" in wrong.text
        unknown = await http.post("/auth/login", json={"username": "nobody", "password": "x"})
        assert unknown.status_code == 401
        assert (await http.get("/auth/me")).status_code == 401

        ok = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert ok.status_code == 200
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        me = await http.get("/auth/me")
        assert me.json() == {"actor": f"user:{name}", "role": "viewer"}
    async with deployment.sessionmaker() as session:
        stored = (
            await session.execute(
                select(operator.c.password_hash).where(operator.c.username == name)
            )
        ).scalar_one()
        actions = [
            row.action
            for row in await session.execute(
                select(audit.c.action).where(audit.c.detail["username"].astext == name)
            )
        ]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert actions == ["user.create", "login.failed"]


async def test_a_cookie_replayed_after_logout_is_refused_and_login_rotates_it(
    deployment: Deployment,
) -> None:
    name = await deployment.user("admin")
    async with deployment.client() as http:
        await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        first = http.cookies["lull_session"]
        # Logging in again (with the first cookie presented) issues a new token and ends
        # the first: a token planted before a login is worthless after it.
        await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        second = http.cookies["lull_session"]
        assert second != first
        async with deployment.client(cookies={"lull_session": first}) as replay:
            assert (await replay.get("/auth/me")).status_code == 401
        assert (await http.get("/auth/me")).status_code == 200

        out = await http.post("/auth/logout")
        assert out.status_code == 204
        assert "lull_session" not in http.cookies
    async with deployment.client(cookies={"lull_session": second}) as replay:
        assert (await replay.get("/auth/me")).status_code == 401
        assert (await replay.get("/bots")).status_code == 401


async def test_a_secure_cookie_outside_plain_http_development(deployment: Deployment) -> None:
    deployment.ctx.options = type(deployment.ctx.options)(
        task_queue=deployment.tq, cookie_secure=True
    )
    name = await deployment.user("viewer")
    async with deployment.client() as http:
        ok = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert "secure" in ok.headers["set-cookie"].lower()


async def test_a_viewer_reads_and_only_an_admin_changes(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    viewer = await deployment.signed_in("viewer")
    created = await admin.post("/bots", json=new_bot())
    assert created.status_code == 201
    bot_id = created.json()["id"]

    assert (await viewer.get("/bots")).status_code == 200
    assert (await viewer.get(f"/bots/{bot_id}")).status_code == 200
    assert (await viewer.get("/chats")).status_code == 200
    assert (await viewer.get("/failed-bursts")).status_code == 200
    for method, path, body in [
        ("POST", "/bots", new_bot()),
        ("PUT", f"/bots/{bot_id}", {"model": "x"}),
        ("POST", f"/bots/{bot_id}/disable", None),
        ("POST", f"/bots/{bot_id}/enable", None),
        ("DELETE", f"/bots/{bot_id}", None),
        ("POST", "/chats/1/messages", {"text": "hi"}),
        ("POST", "/chats/1/flush", None),
        ("POST", "/chats/1/pause", None),
        ("POST", "/failed-bursts/x/retry", None),
        ("GET", "/audit", None),
        ("GET", "/api-keys", None),
        ("POST", "/api-keys", {"name": "ci"}),
    ]:
        answer = await viewer.request(method, path, json=body, headers={"Idempotency-Key": "k"})
        assert answer.status_code == 403, (method, path, answer.text)
        assert "admin role" in answer.json()["detail"]
    assert (await admin.get(f"/bots/{bot_id}")).json()["model"] is None  # nothing applied


async def test_an_api_key_is_shown_once_stored_hashed_and_revocable(
    deployment: Deployment,
) -> None:
    admin = await deployment.signed_in("admin")
    made = await admin.post("/api-keys", json={"name": "deploy bot", "role": "viewer"})
    assert made.status_code == 201
    key, prefix = made.json()["key"], made.json()["prefix"]
    assert key.startswith(f"lull_{prefix}_")
    listed = (await admin.get("/api-keys")).json()
    assert [k["prefix"] for k in listed if k["prefix"] == prefix] == [prefix]
    assert all("key" not in k for k in listed)
    async with deployment.sessionmaker() as session:
        stored = (
            await session.execute(select(api_key.c.key_hash).where(api_key.c.prefix == prefix))
        ).scalar_one()
    assert key.encode() not in stored and len(stored) == 32

    async with deployment.client(headers={"Authorization": f"Bearer {key}"}) as machine:
        assert (await machine.get("/auth/me")).json() == {
            "actor": f"key:{prefix}",
            "role": "viewer",
        }
        assert (await machine.post("/bots", json=new_bot())).status_code == 403
    async with deployment.client(headers={"Authorization": f"Bearer {key}x"}) as forged:
        assert (await forged.get("/bots")).status_code == 401
    async with deployment.client(headers={"Authorization": "Bearer nonsense"}) as forged:
        assert (await forged.get("/bots")).status_code == 401

    assert (await admin.delete(f"/api-keys/{made.json()['id']}")).status_code == 204
    assert (await admin.delete(f"/api-keys/{made.json()['id']}")).status_code == 404
    async with deployment.client(headers={"Authorization": f"Bearer {key}"}) as machine:
        assert (await machine.get("/bots")).status_code == 401


async def test_logins_are_limited_per_ip_and_per_username_with_retry_after(
    deployment: Deployment,
) -> None:
    deployment.ctx.options = type(deployment.ctx.options)(
        task_queue=deployment.tq, cookie_secure=False, logins_per_minute=3
    )
    deployment.ctx.limiter = RateLimiter()
    name = await deployment.user("admin")
    async with deployment.client(ip="10.1.1.1") as http:
        codes = [
            (await http.post("/auth/login", json={"username": name, "password": "bad"})).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        # The right password too: the limit is on attempts, not failures.
        limited = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # From another address, the same username is limited as well (a spread of hosts).
    async with deployment.client(ip="10.1.1.2") as http:
        other = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert other.status_code == 429


async def test_requests_are_limited_per_key_and_per_ip(deployment: Deployment) -> None:
    deployment.ctx.options = type(deployment.ctx.options)(
        task_queue=deployment.tq,
        cookie_secure=False,
        requests_per_minute=5,
        ip_requests_per_minute=8,
    )
    deployment.ctx.limiter = RateLimiter()
    admin = await deployment.signed_in("admin")
    codes = [(await admin.get("/bots")).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    # Unauthenticated requests from one IP run out too (before any credential check).
    async with deployment.client(ip="10.9.9.9") as anon:
        codes = [(await anon.get("/bots")).status_code for _ in range(9)]
    assert codes == [401] * 8 + [429]


async def test_the_audit_log_is_append_only(deployment: Deployment) -> None:
    admin = await deployment.signed_in("admin")
    await admin.post("/bots", json=new_bot())
    async with deployment.sessionmaker() as session:
        for statement in ("update audit set actor = 'x'", "delete from audit", "truncate audit"):
            try:
                async with session.begin():
                    await session.execute(text(statement))
            except Exception as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{statement} was allowed")
    entries = (await admin.get("/audit")).json()
    assert entries[0]["action"] == "bot.create" and entries[0]["actor"].startswith("user:admin-")
    assert str(uuid.UUID(int=0)) not in str(entries)
