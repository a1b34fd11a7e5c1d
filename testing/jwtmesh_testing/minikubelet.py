"""A stand-in for the kubelet's volume sync: Secrets and ConfigMaps become files.

Used where no kubelet runs (the local control plane has none): every half second, changed
objects are written as kubelet-style volumes (`..data` symlink swap).
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh_testing.kubelet_volume import KubeletVolume


class MiniKubelet:
    """Copies Secrets and ConfigMaps into kubelet-style volumes, every half second."""

    def __init__(self, api: client.ApiClient, namespace: str, root: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.root = root
        self.volumes: dict[str, tuple[str, str, KubeletVolume]] = {}
        self._last: dict[str, dict[str, bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="mini-kubelet")

    def mount(self, volume: str, kind: str, name: str) -> KubeletVolume:
        mounted = KubeletVolume(self.root / volume)
        self.volumes[volume] = (kind, name, mounted)
        self.sync_once()
        return mounted

    def sync_once(self) -> None:
        for volume, (kind, name, mounted) in self.volumes.items():
            try:
                if kind == "secret":
                    secret: Any = self.core.read_namespaced_secret(name, self.namespace)
                    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
                else:
                    cm: Any = self.core.read_namespaced_config_map(name, self.namespace)
                    data = {k: v.encode() for k, v in (cm.data or {}).items()}
            except ApiException:
                continue
            if data != self._last.get(volume):
                mounted.write(data)
                self._last[volume] = data

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sync_once()
