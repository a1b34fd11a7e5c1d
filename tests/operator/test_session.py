"""The capped API session: requests share a bounded pool, watch streams never wait for it."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
from aiohttp import web

from jwtmesh_operator.session import WatchExemptConnector, is_watch


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
