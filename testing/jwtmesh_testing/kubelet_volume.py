"""Write a directory the way the kubelet writes a ConfigMap or Secret volume.

The kubelet's AtomicWriter puts each version in a fresh `..<timestamp>` directory,
points the `..data` symlink at it with an atomic rename, and exposes every key as a
symlink `key -> ..data/key`. Readers that follow the path always see a whole version.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path


class KubeletVolume:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._version = 0

    def write(self, files: Mapping[str, bytes]) -> None:
        """Publish a new version atomically, then remove the previous one."""
        self._version += 1
        version_dir = (
            self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{os.getpid()}.{self._version}"
        )
        version_dir.mkdir()
        for name, data in files.items():
            (version_dir / name).write_bytes(data)
        data_link = self.root / "..data"
        old_target = os.readlink(data_link) if data_link.is_symlink() else None
        staging = self.root / "..data_tmp"
        staging.unlink(missing_ok=True)
        staging.symlink_to(version_dir.name)
        os.replace(staging, data_link)  # the atomic swap readers rely on
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if old_target is not None:
            shutil.rmtree(self.root / old_target, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.root / name
