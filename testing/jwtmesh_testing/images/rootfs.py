"""The root filesystem the images share: Debian bookworm (mmdebstrap, essential variant,
with python3), a virtual environment with the locked dependencies (pip inside a chroot,
offline, from wheels downloaded with hashes checked), then the project. Each step is cached
under the image cache by the hash of what it is made from."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

EPOCH_ENV = {"SOURCE_DATE_EPOCH": "1704067200"}
SUITE = "bookworm"
PACKAGES = ["python3", "python3-venv", "ca-certificates", "libstdc++6"]  # libstdc++: grpcio
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
VENV = "opt/jwtmesh"  # relative to the root filesystem
STAGING = "/tmp/jwtmesh-build"  # noqa: S108 (inside the chroot, removed after each step)
# Inside the chroot: no host variables (PIP_FIND_LINKS, proxies' CA paths) leak in.
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_CACHE_DIR": "1",
}


def say(message: str) -> None:
    print(f"[images] {message}", flush=True)


class ImageBuildError(RuntimeError):
    """A step of the image build failed (the message says which)."""


def digest_of(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def check(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise ImageBuildError(f"{' '.join(argv[:3])} ... failed:\n{tail}")


def base_key() -> str:
    return digest_of(SUITE.encode(), " ".join(PACKAGES).encode(), "\n".join(MIRRORS).encode())


def debootstrap(rootfs: Path) -> None:
    """mmdebstrap into `rootfs` (a new directory), then drop apt's lists and the logs."""
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError("mmdebstrap missing: run hack/cluster/packages.sh (root)")
    partial = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    say(f"mmdebstrap {SUITE} ({', '.join(PACKAGES)}); first run ~1 minute")
    check(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=essential",
            f"--include={','.join(PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            SUITE,
            str(partial),
            *MIRRORS,
        ],
        env={**os.environ, **EPOCH_ENV},
    )
    for leftover in ("var/lib/apt/lists", "var/cache/apt", "var/log"):
        for path in (partial / leftover).glob("*"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    partial.rename(rootfs)
    say(f"base root filesystem ready in {time.monotonic() - started:.0f} s")


def chroot(rootfs: Path, *argv: str) -> None:
    check(["chroot", str(rootfs), *argv], env=CHROOT_ENV)


def venv_files(rootfs: Path) -> list[str]:
    """Every path under the venv, relative to the root filesystem."""
    top = rootfs / VENV
    return sorted(p.relative_to(rootfs).as_posix() for p in [top, *top.rglob("*")])


def install_dependencies(rootfs: Path, wheels: Path, lock: Path) -> None:
    """A fresh venv at /opt/jwtmesh with exactly the lock's wheels (hashes checked, offline),
    byte-compiled with unchecked hashes (reproducible, and nothing to write at run time)."""
    shutil.rmtree(rootfs / VENV, ignore_errors=True)
    staging = rootfs / STAGING.lstrip("/")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(wheels, staging / "wheels")
    shutil.copy(lock, staging / "requirements.lock")
    try:
        chroot(rootfs, "python3", "-m", "venv", f"/{VENV}")
        chroot(
            rootfs,
            f"/{VENV}/bin/pip",
            "install",
            "--quiet",
            "--no-index",
            f"--find-links={STAGING}/wheels",
            "--require-hashes",
            "--no-deps",
            "--no-compile",
            "-r",
            f"{STAGING}/requirements.lock",
        )
        compile_venv(rootfs, "-f", f"/{VENV}/lib")  # -f: ensurepip left timestamp pycs
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_project(rootfs: Path, wheel: Path) -> None:
    """The project's wheel, without dependencies, over whatever version was there."""
    staging = rootfs / STAGING.lstrip("/")
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copy(wheel, staging / wheel.name)
    try:
        chroot(
            rootfs,
            f"/{VENV}/bin/pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--force-reinstall",
            "--no-compile",
            f"{STAGING}/{wheel.name}",
        )
        site = next((rootfs / VENV / "lib").glob("python3*/site-packages"))
        packages = ["jwtmesh", "jwtmesh_sidecar", "jwtmesh_operator"]
        compile_venv(rootfs, *(f"/{(site / p).relative_to(rootfs)}" for p in packages))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def compile_venv(rootfs: Path, *paths: str) -> None:
    chroot(
        rootfs,
        f"/{VENV}/bin/python",
        "-m",
        "compileall",
        "-q",
        "-j0",
        "--invalidation-mode=unchecked-hash",
        *paths,
    )
