"""kopf's connection to the API server, with a bound on connections for ordinary requests.

kopf's own session opens one TLS connection per concurrent request and never caps them.
Each connection costs ~400 KiB (asyncio's 256 KiB TLS read buffer, OpenSSL's buffers), so
a burst of a thousand identities left hundreds of them open: tens of MiB of the operator's
RSS (docs/performance.md). Capping them naively is unsafe: a watch stream holds its
connection for minutes, and with namespace globs the number of streams is not known up
front, so a fixed cap can starve a watcher and hang the operator. Here watch streams get a
pool of their own, with no cap, and only requests wait for one of the capped connections.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import kopf

REQUEST_CONNECTIONS = 16
"""Concurrent non-watch requests to the API server (kopf's own default: unlimited)."""


class WatchExemptConnector(aiohttp.TCPConnector):
    """At most `limit` connections for requests; watch streams use an uncapped pool."""

    def __init__(self, *, limit: int, ssl_context: ssl.SSLContext) -> None:
        super().__init__(limit=limit, ssl=ssl_context)
        self._streams = aiohttp.TCPConnector(limit=0, ssl=ssl_context)

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        if is_watch(req.url.query):
            return await self._streams.connect(req, traces, timeout)
        return await super().connect(req, traces, timeout)

    async def close(self, **options: Any) -> None:
        # `abort_ssl` exists from aiohttp 3.12 on: pass along whatever kopf's aiohttp takes.
        await self._streams.close(**options)
        await super().close(**options)


def is_watch(query: Any) -> bool:
    """A watch request (`?watch=true`) streams for as long as the server allows."""
    return str(query.get("watch", "")).lower() in ("true", "1")


def capped_session(
    info: kopf.ConnectionInfo, limit: int = REQUEST_CONNECTIONS
) -> kopf.AiohttpSession:
    """The session kopf would build from `info`, with WatchExemptConnector underneath."""
    headers = info.as_http_headers()
    session = aiohttp.ClientSession(
        connector=WatchExemptConnector(limit=limit, ssl_context=info.as_ssl_context()),
        headers=headers,
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=session,
    )


class SessionPerCredentials:
    """One session per set of credentials: the same `kopf.AiohttpSession` object again when
    the login finds the credentials it found last time.

    kopf never re-adds credentials it has invalidated (a 401): it compares them by
    equality. A session wraps a new `aiohttp.ClientSession`, so a new session never equals
    the invalidated one, and kopf logged in again and again with the same dead token:
    ~900 logins per replica in the 30 s after `helm uninstall` had deleted the operator's
    ServiceAccount, until the kubelet killed it. With the same object kopf sees the
    credentials it already refused, runs out of credentials and stops.
    """

    def __init__(self, make: Any = capped_session) -> None:
        self._make = make
        self._last: tuple[kopf.ConnectionInfo, kopf.AiohttpSession] | None = None

    def session_for(self, info: kopf.ConnectionInfo) -> kopf.AiohttpSession:
        if self._last is not None and self._last[0] == info:
            return self._last[1]
        session: kopf.AiohttpSession = self._make(info)
        self._last = (info, session)
        return session
