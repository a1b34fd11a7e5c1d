"""What the API server sends this operator: of all Secrets, only the identities' keys.

kopf's `labels=` and `field=` filters on a handler apply after an object has arrived. Without
these selectors every Secret in the cluster (Helm releases, TLS keys, other applications'
credentials) would be listed at start and streamed here at every change: memory and CPU
growing with the cluster instead of the mesh, and other tenants' secrets in this process.
With them, a Secret whose label is taken off leaves the watch as a DELETED event.

kopf's initial LISTs come in pages too (by default one response holds every object: at
10,000 identities tens of MB of JSON read and parsed at once, on top of the objects a restart
holds anyway).
"""

from __future__ import annotations

import kopf

from jwtmesh_operator.keystore import SECRET_TYPE
from jwtmesh_operator.kube import LIST_PAGE
from jwtmesh_operator.spec import IDENTITY_LABEL

SECRETS = ("", "v1", "secrets")
SECRET_LABEL_SELECTOR = IDENTITY_LABEL  # the label present, whatever its value
SECRET_FIELD_SELECTOR = f"type={SECRET_TYPE}"


def narrow_watches(settings: kopf.OperatorSettings) -> None:
    """Ask for signing-key Secrets only, filtered by the API server (kopf 1.45 and later),
    and for every initial list in pages."""
    settings.watching.label_selectors[SECRETS] = SECRET_LABEL_SELECTOR
    settings.watching.field_selectors[SECRETS] = SECRET_FIELD_SELECTOR
    settings.watching.chunk_size = LIST_PAGE
