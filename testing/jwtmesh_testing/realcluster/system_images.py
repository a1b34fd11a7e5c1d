"""The cluster's own images, built from the node binaries (no registry): the pod sandbox
("pause") and CoreDNS, one static binary each; and importing any docker-archive."""

from __future__ import annotations

import os
from pathlib import Path

from jwtmesh_testing.images.archive import Image, layer_from_files, write_docker_archive
from jwtmesh_testing.realcluster.configs import sandbox_image
from jwtmesh_testing.realcluster.daemons import run, say
from jwtmesh_testing.realcluster.layout import Layout, NodeBinaries


def image_cache() -> Path:
    default = Path.home() / ".cache" / "jwtmesh" / "images"
    return Path(os.environ.get("JWTMESH_IMAGE_CACHE", str(default)))


def coredns_image(binaries: NodeBinaries) -> str:
    return f"localhost/jwtmesh/coredns:{binaries.version('coredns')}"


def pause_version(binaries: NodeBinaries) -> str:
    return binaries.path("pause").parent.name.removeprefix("pause-")


def system_archive(binaries: NodeBinaries) -> Path:
    """pause + CoreDNS as one docker-archive, cached by the binaries' versions."""
    cache = image_cache() / "system"
    cache.mkdir(parents=True, exist_ok=True)
    key = f"pause-{pause_version(binaries)}-coredns-{binaries.version('coredns')}"
    output = cache / f"{key}.tar"
    if output.exists():
        say(f"system images cached: {output}")
        return output
    pause = layer_from_files(
        {"pause": (binaries.path("pause").read_bytes(), 0o755)}, cache / "pause.layer.tar", "pause"
    )
    coredns = layer_from_files(
        {"coredns": (binaries.path("coredns").read_bytes(), 0o755)},
        cache / "coredns.layer.tar",
        "coredns",
    )
    write_docker_archive(
        output,
        [
            Image(sandbox_image(pause_version(binaries)), (pause,), ["/pause"], user="65535:65535"),
            Image(coredns_image(binaries), (coredns,), ["/coredns"]),
        ],
    )
    for layer in (pause, coredns):
        layer.path.unlink()
    say(f"system images built: {output}")
    return output


def import_archive(layout: Layout, binaries: NodeBinaries, archive: Path) -> None:
    """`ctr -n k8s.io images import` (unpacked for the CRI's snapshotter)."""
    run(
        [
            str(binaries.path("ctr")),
            "--address",
            str(layout.containerd_socket),
            "--namespace",
            "k8s.io",
            "images",
            "import",
            str(archive),
        ]
    )
    say(f"imported {archive.name} into containerd")
