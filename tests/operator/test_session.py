"""The capped API session: requests share a bounded pool, watch streams never wait for it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf
from aiohttp import web
from kopf._cogs.structs.credentials import Vault, VaultKey

from jwtmesh_operator.session import SessionPerCredentials, WatchExemptConnector, is_watch


def test_is_watch() -> None:
    assert is_watch({"watch": "true"})
    assert is_watch({"watch": "1"})
    assert not is_watch({"watch": "false"})
    assert not is_watch({})


async def _scenario() -> tuple[int, int, list[int]]:
    """One connection for requests; two watch streams held open while requests run."""
    release = asyncio.Event()
    peak = current = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal peak, current
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b'{"type":"ADDED"}\n')
            await release.wait()
            return response
        current += 1
        peak = max(peak, current)
        await asyncio.sleep(0.02)
        current -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    connector = WatchExemptConnector(limit=1, ssl_context=ssl.create_default_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        watches = [await session.get(f"{base}/w{i}", params={"watch": "true"}) for i in range(2)]
        for watch in watches:
            assert await watch.content.readline() == b'{"type":"ADDED"}\n'

        async def get(i: int) -> int:
            async with session.get(f"{base}/r{i}") as response:
                return response.status

        # Both watches still hold their connections.
        statuses = await asyncio.gather(*(get(i) for i in range(6)))
        release.set()
        for watch in watches:
            watch.close()
    await runner.cleanup()
    return peak, len(statuses), statuses


def test_requests_are_capped_and_watches_do_not_count() -> None:
    # With a plain limit=1 connector the second watch (or the requests) would wait for ever.
    peak, count, statuses = asyncio.run(asyncio.wait_for(_scenario(), 15))
    assert count == 6
    assert set(statuses) == {200}
    assert peak == 1  # never more than `limit` requests at once


INFO = kopf.ConnectionInfo(server="https://10.96.0.1:443", token="service-account-token")


def _session(info: kopf.ConnectionInfo) -> kopf.AiohttpSession:
    """Like capped_session: a new wrapper around a new client session on every call."""
    return kopf.AiohttpSession(server=info.server, aiohttp_session=object())


async def _login_again_after_a_401(login: Callable[[kopf.ConnectionInfo], Any]) -> bool:
    """kopf's vault after the API answered 401 and the login found the same token again:
    True if kopf gives up (LoginError), False if it takes the credentials back (and would
    log in again after the next 401, for ever). The vault is kopf's private class: this is
    exactly the behaviour the operator relies on."""
    vault = Vault()
    first = login(INFO)
    await vault.populate({"login": first})
    refused = asyncio.create_task(vault.invalidate(VaultKey("login"), first, exc=OSError("401")))
    await asyncio.sleep(0.01)  # the request waits for the re-authentication
    await vault.populate({"login": login(INFO)})
    try:
        await asyncio.wait_for(refused, 5)
    except kopf.LoginError:
        return True
    return False


def test_a_refused_token_is_not_retried_for_ever() -> None:
    """helm uninstall deletes the operator's ServiceAccount: every request gets 401 and the
    token file still holds the same token. With a new session per login kopf accepted it
    again each time (~900 logins per replica in 30 s on the real cluster)."""
    assert asyncio.run(_login_again_after_a_401(_session)) is False  # the loop
    assert asyncio.run(_login_again_after_a_401(SessionPerCredentials(_session).session_for))


def test_new_credentials_get_a_new_session() -> None:
    sessions = SessionPerCredentials(_session)
    first = sessions.session_for(INFO)
    assert sessions.session_for(INFO) is first
    rotated = kopf.ConnectionInfo(server=INFO.server, token="the next token")
    assert sessions.session_for(rotated) is not first
