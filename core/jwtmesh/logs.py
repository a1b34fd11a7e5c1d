"""One JSON log schema for every jwtmesh process (the sidecar and the operator).

Every line is one JSON object with at least

    ts      RFC 3339 UTC with milliseconds, "2026-11-25T12:00:00.123Z"
    level   debug | info | warning | error | critical
    event   what happened, a stable snake_case name ("denied", "reload_failed", ...;
            "log" for a line that names none, such as a library's)
    logger  where it was logged
    msg     for people

and the fields of its event: a decision adds status, reason, iss, sub, kid, jti, method,
path, request_id (Envoy's x-request-id), ... (docs/troubleshooting.md lists them).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any, TextIO

from jwtmesh.times import rfc3339

LEVELS = ("debug", "info", "warning", "error")
DEFAULT_EVENT = "log"
# LogRecord's own attributes: everything else on a record came from `extra=` and is a field.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def log_line(level: str, event: str, logger: str, msg: str, ts: float, **fields: Any) -> str:
    """One line of the schema (no newline)."""
    line: dict[str, Any] = {
        "ts": rfc3339(ts, fraction=True),
        "level": level,
        "event": event,
        "logger": logger,
        "msg": msg,
    }
    line.update((key, value) for key, value in fields.items() if value is not None)
    return json.dumps(line, separators=(",", ":"), default=str)


_PLAIN = (str, int, float, bool, list, dict, type(None))
# Fields a library adds for its own handlers (kopf: whether to post an Event, its settings).
_NOT_FIELDS = frozenset({"k8s_skip", "settings"})


class JsonFormatter(logging.Formatter):
    """Any LogRecord as one line of the schema; `extra={"event": ..., ...}` adds fields
    (plain JSON values only: objects a library attaches for itself are left out)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES
            and key not in _NOT_FIELDS
            and not key.startswith("_")
            and isinstance(value, _PLAIN)
        }
        event = str(fields.pop("event", DEFAULT_EVENT))
        if record.exc_info:
            fields["exception"] = "".join(traceback.format_exception(*record.exc_info)).strip()
        return log_line(
            record.levelname.lower(),
            event,
            record.name,
            record.getMessage(),
            record.created,
            **fields,
        )


def configure_logging(level: str, stream: TextIO | None = None) -> logging.Handler:
    """JSON lines on stderr for every logger of the process (libraries' too), from `level`
    up. Returns the handler (its level is the one that filters)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(level.upper())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
