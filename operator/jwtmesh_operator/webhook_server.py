"""kopf's webhook server, telling whether it listens yet (the operator's readiness).

The readiness probe puts a replica behind the webhook Service: a replica that is Ready
before its webhook listens meets the API server with a closed port, and with
`failurePolicy: Fail` the labeled Pod being created is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf


class ListeningWebhookServer(kopf.WebhookServer):
    listening = False

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        # kopf yields the client configuration once the TLS site has started.
        async for client_config in super().__call__(fn):
            self.listening = True
            yield client_config
