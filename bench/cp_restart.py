"""The restart step of the control-plane benchmark: stop the operator, ask for rotations
while none runs, start a new one over every existing identity, and measure the time to
/readyz, to steady state (every identity reconciled, nothing due, each rotation asked for
under way: its new key published) and until those rotations sign (prePublish later); then
check that each happened exactly once and no other identity got a new key."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cp_phases import Bench, annotate, say, wait_until

from jwtmesh_testing.operator_metrics import read_metrics
from jwtmesh_testing.operator_process import OperatorProcess


def restart(
    bench: Bench,
    old: OperatorProcess,
    start: Callable[[], OperatorProcess],
    rotations: int = 100,
) -> tuple[OperatorProcess, dict[str, Any]]:
    """Returns the new operator and the figures."""
    before = bench.identities.snapshot()
    old.stop()
    step = max(1, len(bench.keys) // rotations)
    chosen = bench.keys[::step][:rotations]
    annotate(bench.api, chosen, f"restart-{time.time():.0f}")
    say(f"  operator stopped; {len(chosen)} rotations requested while none runs")
    started = time.monotonic()
    operator = start()
    operator.wait_ready(timeout=600)
    ready = time.monotonic() - started
    say(f"  new operator ready (synced) {ready:.1f} s after spawning")

    def caught_up() -> tuple[int, int]:
        """Every identity reconciled by the new process, nothing due or publishing, and
        each rotation asked for under way: its successor key made and in the mounted
        bundle (it signs prePublish later, by design: `signing` below)."""
        metrics = read_metrics(operator.port)
        view = bench.identities.snapshot()
        under_way = sum(1 for key in chosen if key in view and successor_published(view, key))
        reconciled = int(metrics["jwtmesh_operator_reconciles_total"])
        idle = (
            metrics["jwtmesh_operator_scheduler_backlog"] == 0
            and metrics["jwtmesh_operator_bundle_pending"] == 0
        )
        total = len(bench.keys) + len(chosen)
        return min(reconciled, len(bench.keys)) + under_way - (0 if idle else 1), total

    def successor_published(view: dict[Any, Any], key: Any) -> bool:
        new_kids = view[key][3] - before[key][3]
        issuer = view[key][1]
        return any(kid in bench.mount.kids.get(issuer, ()) for kid in new_kids)

    def signing() -> tuple[int, int]:
        """Each rotation asked for done: the new key signs and the mounted bundle has it."""
        view = bench.identities.snapshot()
        rotated = sum(
            1
            for key in chosen
            if key in view and view[key][2] != before[key][2] and bench.published(view, key)
        )
        return rotated, len(chosen)

    steady_at = ready + wait_until("steady state after restart", caught_up, 900)
    say(f"  steady {steady_at:.1f} s after spawning (every identity reconciled)")
    signing_at = steady_at + wait_until("asked-for rotations signing", signing, 900)
    time.sleep(10)  # a duplicated rotation would show by now
    after = bench.identities.snapshot()
    new = {key: after[key][3] - before[key][3] for key in bench.keys}
    wanted = set(chosen)
    missed = [key for key in chosen if not new[key]]
    duplicated = [key for key in bench.keys if len(new[key]) > (1 if key in wanted else 0)]
    say(
        f"  rotations signing {signing_at:.1f} s after spawning; asked {len(chosen)}, "
        f"missed {len(missed)}, duplicated or unasked {len(duplicated)} {duplicated[:3]}"
    )
    return operator, {
        "restart_ready_seconds": round(ready, 1),
        "restart_steady_seconds": round(steady_at, 1),
        "restart_rotations_signing_seconds": round(signing_at, 1),
        "restart_rotations_requested": len(chosen),
        "restart_rotations_missed": len(missed),
        "restart_rotations_duplicated": len(duplicated),
    }
