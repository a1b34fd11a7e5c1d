"""Times as people and logs read them: RFC 3339 in UTC, and relative to now."""

from __future__ import annotations

import datetime
import math


def rfc3339(seconds: float, fraction: bool = False) -> str:
    """`2026-11-25T12:00:00Z` (with milliseconds when `fraction`); out-of-range times are
    shown as the number they are."""
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g} (not a representable time)"
    if fraction:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: float) -> str:
    """`4m12s`, `2h`, `3d4h`: a duration in its two largest units."""
    if not math.isfinite(seconds):
        return "forever"
    left = round(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts[:2])


def relative(moment: float, now: float) -> str:
    """`in 4m12s`, `3m2s ago`, or `now`."""
    delta = moment - now
    if abs(delta) < 0.5:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


def when(moment: float, now: float) -> str:
    """`2026-11-25T12:00:00Z (in 4m12s)`."""
    return f"{rfc3339(moment)} ({relative(moment, now)})"
