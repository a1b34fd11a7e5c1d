"""The private key file inside the running sidecar, as the kubelet mounted it: the Secret
volume has `defaultMode: 0400` and the webhook gives the Pod `fsGroup: 65532` when it has
none, so the sidecar (uid 65532, not root) can read the key and nothing else in the Pod
mounts it."""

from __future__ import annotations

import json

import pytest

from jwtmesh_testing.realcluster.daemons import say
from jwtmesh_testing.realcluster.workloads import Kube

pytestmark = pytest.mark.cluster
KEY_FILE = "/etc/jwtmesh/identity/signing-keys.json"
STAT = f"""
import json, os, stat
path = {KEY_FILE!r}
link = os.lstat(path)
found = os.stat(path)
with open(path, "rb") as key_file:
    keys = json.loads(key_file.read())
print(json.dumps({{
    "link": stat.S_ISLNK(link.st_mode),
    "target": os.path.realpath(path).rpartition("/")[0].rpartition("/")[2],
    "mode": oct(stat.S_IMODE(found.st_mode)), "uid": found.st_uid, "gid": found.st_gid,
    "reader": [os.getuid(), os.getgid(), sorted(os.getgroups())],
    "keys": len(keys["keys"]),
}}))
"""


def test_the_sidecar_reads_its_key_file_as_uid_65532(herald_census: Kube) -> None:
    for service in ("census", "herald"):
        found = json.loads(herald_census.exec_in(service, "jwtmesh-sidecar", "python3", "-c", STAT))
        say(f"{service}'s {KEY_FILE} as mounted: {found}")
        assert found["reader"][0] == 65532  # the sidecar's user read it (not root)
        assert found["keys"] >= 1
        # What the kubelet made of defaultMode 0400 with fsGroup 65532: owner root, group
        # the fsGroup, group-readable, nobody else and nobody may write.
        assert (found["mode"], found["uid"], found["gid"]) == ("0o440", 0, 65532)
        assert found["link"]  # ..data swaps: the sidecar re-reads a rotated key


def test_no_other_container_mounts_the_key(herald_census: Kube) -> None:
    check = f"import os; print(os.path.exists({KEY_FILE!r}))"
    assert herald_census.exec_in("census", "app", "python3", "-c", check) == "False"
    envoy = herald_census.json("-n", "demo", "get", "pods", "-l", "app=census")["items"][0]
    mounts = {
        c["name"]: [m["mountPath"] for m in c.get("volumeMounts", [])]
        for c in envoy["spec"]["containers"]
    }
    assert not any("/etc/jwtmesh/identity" in m for m in mounts["jwtmesh-envoy"])
    assert "/etc/jwtmesh/identity" in mounts["jwtmesh-sidecar"]
