"""The control plane's binaries: built from Go modules by hack/build-binaries.sh, cached outside
the repository, and found through the `current.env` file that script writes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from jwtmesh_testing.paths import HACK

__all__ = ["Binaries", "LocalClusterError", "bin_cache", "say"]

BUILD_SCRIPT = HACK / "build-binaries.sh"
DEFAULT_CACHE = Path.home() / ".cache" / "jwtmesh" / "bin"


class LocalClusterError(RuntimeError):
    """A control-plane process could not be found, started, or did not become healthy."""


def say(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


# --- binaries --------------------------------------------------------------------------


def bin_cache() -> Path:
    """Where hack/build-binaries.sh keeps the binaries (`$JWTMESH_BIN_CACHE`)."""
    return Path(os.environ.get("JWTMESH_BIN_CACHE", DEFAULT_CACHE))


@dataclass(frozen=True)
class Binaries:
    """The five binaries this repository pins, as listed in `<bin cache>/current.env`."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path
    kubernetes_version: str

    @property
    def paths(self) -> tuple[Path, ...]:
        return (
            self.etcd,
            self.kube_apiserver,
            self.kube_controller_manager,
            self.kubectl,
            self.helm,
        )

    @classmethod
    def locate(cls, cache: Path | None = None) -> Binaries | None:
        """The binaries named by `current.env`, or None if it or any binary is missing."""
        env_file = (cache or bin_cache()) / "current.env"
        try:
            text = env_file.read_text()
        except FileNotFoundError:
            return None
        values: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                words = shlex.split(value)  # the script writes values with printf %q
                values[key.strip()] = words[0] if words else ""
        try:
            found = cls(
                etcd=Path(values["JWTMESH_ETCD"]),
                kube_apiserver=Path(values["JWTMESH_KUBE_APISERVER"]),
                kube_controller_manager=Path(values["JWTMESH_KUBE_CONTROLLER_MANAGER"]),
                kubectl=Path(values["JWTMESH_KUBECTL"]),
                helm=Path(values["JWTMESH_HELM"]),
                kubernetes_version=values["JWTMESH_KUBERNETES_VERSION"],
            )
        except KeyError:
            return None
        return found if all(os.access(p, os.X_OK) for p in found.paths) else None

    @classmethod
    def ensure(cls, cache: Path | None = None) -> Binaries:
        """Find the binaries; run hack/build-binaries.sh first if any is missing.

        The script also runs when it is newer than `current.env`, so that bumping a pinned
        version is picked up; with everything cached it returns in milliseconds.
        """
        cache = cache or bin_cache()
        found = cls.locate(cache)
        env_file = cache / "current.env"
        if found is not None and env_file.stat().st_mtime >= _pins_changed_at():
            return found
        if not BUILD_SCRIPT.exists():
            raise LocalClusterError(
                f"control-plane binaries not found in {cache} and {BUILD_SCRIPT} is missing"
            )
        say(f"building or finding the control-plane binaries with {BUILD_SCRIPT}")
        env = {**os.environ, "JWTMESH_BIN_CACHE": str(cache)}
        # The script's progress goes to our stderr; stdout stays clean for callers.
        result = subprocess.run([str(BUILD_SCRIPT)], stdout=_stderr_fd(), env=env, check=False)
        if result.returncode != 0:
            raise LocalClusterError(
                f"{BUILD_SCRIPT} failed with exit status {result.returncode} (output above)"
            )
        found = cls.locate(cache)
        if found is None:
            raise LocalClusterError(f"{BUILD_SCRIPT} succeeded but {env_file} names no binaries")
        return found


def _stderr_fd() -> int:
    """The file descriptor behind sys.stderr (fd 2 if it is an in-memory capture)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


def _pins_changed_at() -> float:
    """The newest modification time among the files that pin the binaries' versions."""
    pins = [BUILD_SCRIPT, HACK / "k8s-bin" / "go.mod", HACK / "etcd-bin" / "go.mod"]
    return max((p.stat().st_mtime for p in pins if p.exists()), default=0.0)
