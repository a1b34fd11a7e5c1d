"""Reproducible layer tarballs and docker-archive files (manifest.json + config + layers).

A layer's entries are sorted, owned as on disk, and dated EPOCH, so the same files give the
same bytes and the same digest. One archive may hold several images sharing layers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Every file in every layer is dated here (2024-01-01T00:00:00Z): content, not build time.
EPOCH = 1704067200
CREATED = "2024-01-01T00:00:00Z"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Layer:
    """An uncompressed layer tarball and its digest (the diff_id)."""

    path: Path
    digest: str  # sha256:<hex>
    comment: str

    @classmethod
    def load(cls, path: Path, comment: str) -> Layer:
        return cls(path, "sha256:" + file_sha256(path), comment)


@dataclass(frozen=True)
class Image:
    name: str  # localhost/jwtmesh/<name>:<tag>
    layers: tuple[Layer, ...]
    entrypoint: list[str]
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [f"PATH={DEFAULT_PATH}"])
    user: str = "65532:65532"

    def config(self) -> dict[str, object]:
        return {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": {
                "Entrypoint": self.entrypoint,
                "Cmd": self.cmd or None,
                "Env": self.env,
                "User": self.user,
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in self.layers]},
            "history": [{"created": CREATED, "comment": layer.comment} for layer in self.layers],
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = EPOCH
    info.uname = info.gname = ""
    return info


def _walk(root: Path, skip_contents: frozenset[str]) -> Iterator[Path]:
    """Every path under `root`, sorted, parents before children."""
    for dirpath, dirnames, filenames in os.walk(root):
        relative = Path(dirpath).relative_to(root).as_posix()
        if relative in skip_contents:
            dirnames[:] = []
            continue
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            yield Path(dirpath) / name


def layer_from_tree(
    root: Path,
    output: Path,
    comment: str,
    *,
    only: Iterable[str] | None = None,
    skip_contents: frozenset[str] = frozenset(),
) -> Layer:
    """A layer of the files under `root` (a root filesystem); with `only`, just those paths
    (relative, e.g. "opt/app/x.py") and their parent directories. Sockets and FIFOs are left out;
    directories in `skip_contents` (e.g. "dev", "proc") are kept empty."""
    selected: list[Path]
    if only is None:
        selected = list(_walk(root, skip_contents))
    else:
        wanted: set[str] = set()
        for item in only:
            parts = Path(item).parts
            wanted.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        selected = [root / p for p in sorted(wanted, key=lambda p: Path(p).parts)]
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in selected:
            mode = path.lstat().st_mode
            if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
                continue
            info = _normalized(tar.gettarinfo(str(path), path.relative_to(root).as_posix()))
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    partial.replace(output)
    return Layer.load(output, comment)


def layer_from_files(files: dict[str, tuple[bytes, int]], output: Path, comment: str) -> Layer:
    """A layer of a few files given by content: {"usr/local/bin/x": (bytes, mode)}; parent
    directories are added as root-owned 0755."""
    directories = sorted({p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)})
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in directories:
            info = _normalized(tarfile.TarInfo(directory))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name in sorted(files):
            content, mode = files[name]
            info = _normalized(tarfile.TarInfo(name))
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    partial.replace(output)
    return Layer.load(output, comment)


def write_docker_archive(output: Path, images: Iterable[Image]) -> None:
    """One docker-archive (as `docker save` writes) holding `images`; shared layers once."""
    images = list(images)
    partial = output.with_name(output.name + ".partial")
    manifest = []
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        written: set[str] = set()
        for image in images:
            for layer in image.layers:
                if layer.digest not in written:
                    written.add(layer.digest)
                    info = _normalized(tar.gettarinfo(str(layer.path), _layer_name(layer)))
                    info.mode = 0o644
                    with layer.path.open("rb") as handle:
                        tar.addfile(info, handle)
            config = json.dumps(image.config(), sort_keys=True).encode()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            _add_bytes(tar, config_name, config)
            manifest.append(
                {
                    "Config": config_name,
                    "RepoTags": [image.name],
                    "Layers": [
                        f"{layer.digest.removeprefix('sha256:')}/layer.tar"
                        for layer in image.layers
                    ],
                }
            )
        _add_bytes(tar, "manifest.json", json.dumps(manifest, sort_keys=True).encode())
    partial.replace(output)


def _layer_name(layer: Layer) -> str:
    return f"{layer.digest.removeprefix('sha256:')}/layer.tar"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _normalized(tarfile.TarInfo(name))
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))
