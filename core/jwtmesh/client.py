"""A small helper for services: get tokens from the local sidecar's `POST /token`.

    from jwtmesh.client import TokenClient
    tokens = TokenClient()                       # http://127.0.0.1:15003/token
    requests.get(url, headers=tokens.headers("census.default"))

Each audience's token is reused until half its lifetime has passed.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable

from jwtmesh.errors import JwtmeshError

DEFAULT_URL = "http://127.0.0.1:15003/token"
# Every POST /token must carry this header (like GCP's `Metadata-Flavor: Google`): an app's
# own request sends it, a request an attacker only steers (server-side request forgery)
# does not, so it cannot have the sidecar mint a token for the attacker.
TOKEN_REQUEST_HEADER = ("jwtmesh-token-request", "1")


class TokenError(JwtmeshError, RuntimeError):
    """The sidecar did not hand out a token (its message says why)."""


class TokenClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        lifetime: float | None = None,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith("http://127.0.0.1") and not url.startswith("http://localhost"):
            raise ValueError("the token endpoint is the local sidecar: use a loopback URL")
        self._url = url
        self._lifetime = lifetime
        self._timeout = timeout
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}  # audience → (token, reuse until)
        self._lock = threading.Lock()

    def token(self, audience: str) -> str:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(audience)
            if cached is not None and now < cached[1]:
                return cached[0]
        request: dict[str, object] = {"audience": audience}
        if self._lifetime is not None:
            request["lifetimeSeconds"] = self._lifetime
        # The constructor only accepts http://127.0.0.1 or http://localhost URLs.
        call = urllib.request.Request(  # noqa: S310
            self._url,
            data=json.dumps(request).encode(),
            headers={
                "content-type": "application/json",
                TOKEN_REQUEST_HEADER[0]: TOKEN_REQUEST_HEADER[1],
            },
        )
        try:
            with urllib.request.urlopen(call, timeout=self._timeout) as response:  # noqa: S310
                answer = json.loads(response.read())
        except OSError as exc:
            raise TokenError(f"no token from {self._url}: {exc}") from exc
        token, expires_at = str(answer["token"]), float(answer["expiresAt"])
        with self._lock:
            self._cache[audience] = (token, now + (expires_at - now) / 2)
        return token

    def headers(self, audience: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(audience)}"}
