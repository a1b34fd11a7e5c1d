"""A Pod's view of the trust bundle, for the control-plane benchmark: the injected
projected volume (the sources `bundle_sources` gives it) kept current the way the kubelet
does (poll, fetch what changed, swap `..data`), the real `jwtmesh sidecar` process reading
it, and tokens minted from the identities' Secrets, checked by that sidecar over HTTP.

The kubelet refreshes ConfigMap volumes every sync period (about a minute by default);
here the volume is refreshed every `interval` (1 s), so the figures measure the operator,
not the kubelet."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from jwtmesh.cluster import BUNDLE_OBJECT_LABEL
from jwtmesh.identity import SIGNING_KEYS_FILE, active_key, parse_identity
from jwtmesh.shards import MANIFEST_FILE, digest, parse_manifest, shard_file
from jwtmesh.tokens.mint import mint_token
from jwtmesh_operator.injection import bundle_sources
from jwtmesh_operator.kube import METADATA_ONLY
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.processes import free_port

BUNDLE = "jwtmesh-trust-bundle"


class BundleMount(threading.Thread):
    """The bundle volume of a Pod in `namespace`, refreshed every `interval` seconds.
    `kids` is issuer → kids of the last consistent set written (manifest and shards agree)."""

    def __init__(self, api: client.ApiClient, namespace: str, root: Path, interval: float = 1.0):
        super().__init__(daemon=True)
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._interval = interval
        self.volume = KubeletVolume(root)
        self._versions: dict[str, str] = {}
        self._data: dict[str, dict[str, str]] = {}  # ConfigMap name → its data
        self._written: dict[str, bytes] | None = None
        self.kids: dict[str, frozenset[str]] = {}
        self.consistent_at = 0.0  # when the last consistent set was written
        self.writes = 0
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                self._refresh()
            except Exception as exc:  # the kubelet retries too
                print(f"[bench]   bundle mount: {exc}", flush=True)
            time.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    def _refresh(self) -> None:
        listed = self._core.list_namespaced_config_map(
            self._namespace,
            label_selector=f"{BUNDLE_OBJECT_LABEL}=true",
            _preload_content=False,
            _headers={"Accept": METADATA_ONLY},
        )
        versions = {
            item["metadata"]["name"]: item["metadata"]["resourceVersion"]
            for item in json.loads(listed.data).get("items") or []
        }
        for name, version in versions.items():
            if self._versions.get(name) != version:
                raw = self._core.read_namespaced_config_map(
                    name, self._namespace, _preload_content=False
                )
                self._data[name] = json.loads(raw.data).get("data") or {}
                self._versions[name] = version
        files: dict[str, bytes] = {}
        for source in bundle_sources(BUNDLE):
            data = self._data.get(source["configMap"]["name"], {})
            for item in source["configMap"]["items"]:
                if item["key"] in data:
                    files[item["path"]] = data[item["key"]].encode()
        if files and files != self._written:
            self.volume.write(files)
            self._written = files
            self.writes += 1
            kids = _kids_if_consistent(files)
            if kids is not None:
                self.kids, self.consistent_at = kids, time.monotonic()


def _kids_if_consistent(files: dict[str, bytes]) -> dict[str, frozenset[str]] | None:
    if MANIFEST_FILE not in files:
        return None
    manifest = parse_manifest(files[MANIFEST_FILE])
    kids: dict[str, frozenset[str]] = {}
    for index, wanted in enumerate(manifest.digests):
        shard = files.get(shard_file(index), b"")
        if digest(shard) != wanted:
            return None
        for issuer, entry in json.loads(shard)["issuers"].items():
            kids[issuer] = frozenset(key["kid"] for key in entry["jwks"]["keys"])
    return kids


class SidecarProcess:
    """`jwtmesh sidecar` for identity census.<namespace>, trusting the mounted bundle."""

    def __init__(self, root: Path, namespace: str, log: Path) -> None:
        self.audience = f"census.{namespace}"
        self.port, metrics = free_port(), free_port()
        argv = [
            sys.executable, "-m", "jwtmesh_sidecar.cli", "sidecar", "--identity", self.audience,
            "--http", f"127.0.0.1:{self.port}", "--metrics", f"127.0.0.1:{metrics}",
            "--bundle-dir", str(root), "--no-policy", "--log-level", "warning",
        ]  # fmt: skip
        self._log_path, self._metrics = log, metrics
        self._log = log.open("wb")
        # Started before the first publish, like a Pod injected early: unready until then.
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=self._log)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{self._metrics}/readyz"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise TimeoutError(f"the sidecar did not become ready (see {self._log_path})")

    def check(self, token: str) -> int:
        """The sidecar's answer to a request carrying `token` (200: verified)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/inbound/orders",
            headers={"authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._log.close()


def token_for(secret_data: dict[str, str], audience: str, now: float) -> tuple[str, str]:
    """(token, kid): what the identity's Pod would send now, signed with the key its
    Secret says is active now."""
    identity = _identity(secret_data[SIGNING_KEYS_FILE])
    key = active_key(identity, now)
    if key is None:
        raise ValueError(f"{identity.issuer} has no active key")
    token = mint_token(
        key,
        issuer=identity.issuer,
        subject=identity.subject,
        audience=audience,
        now=now,
        lifetime=60,
    )
    return token, key.kid


@functools.lru_cache(maxsize=20_000)
def _identity(encoded: str) -> Any:
    """A Secret's signing keys, parsed once per version of them: loading an RSA-3072
    private key with its checks takes ~30 ms, so parsing at every mint made the benchmark's
    own token load take a core away from the operator in RSA runs."""
    return parse_identity(base64.b64decode(encoded))


def secret_name(identity: str) -> str:
    return f"{identity}-jwtmesh-key"


def check_all(
    sidecar: SidecarProcess, secrets: dict[tuple[str, str], Any], keys: list[tuple[str, str]]
) -> tuple[int, list[str]]:
    """Mint one token per identity and have the sidecar check it: (checked, failures)."""

    def one(key: tuple[str, str]) -> str | None:
        namespace, name = key
        data = secrets.get((namespace, secret_name(name)))
        if data is None:
            return f"{namespace}/{name}: no Secret"
        token, kid = token_for(data, sidecar.audience, time.time())
        status = sidecar.check(token)
        return None if status == 200 else f"{namespace}/{name} kid {kid}: HTTP {status}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [failure for failure in pool.map(one, keys) if failure is not None]
    return len(keys), failures
