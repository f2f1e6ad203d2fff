"""The multi-replica deployment shape (contrib/kubernetes) reproduced on one machine.

Three tauon replicas, each on its own loopback address (a pod IP in the cluster), each watching a
directory laid out the way kubelet projects a ConfigMap volume. Requests are spread round-robin over the
replicas (what the Service does) while the ConfigMap is updated, kubelet-style, replica by replica.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path

from support.apps import app_file, push_sleep_app
from support.daemon import free_port, run_tauon, wait_http
from support.load import Load
from support.registry import RegistryServer


def project_configmap(volume: Path, files: dict[str, str], generation: int) -> None:
    """Do what kubelet's atomic writer does: new timestamped dir, `..data_tmp` symlink renamed over
    `..data`, key symlinks into `..data`, old dir removed."""
    volume.mkdir(parents=True, exist_ok=True)
    new_dir = volume / f"..2026_11_24_12_00_0{generation}.00000000{generation}"
    new_dir.mkdir()
    for name, text in files.items():
        (new_dir / name).write_text(text)
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    os.symlink(new_dir.name, volume / "..data_tmp")
    os.rename(volume / "..data_tmp", volume / "..data")
    for name in files:
        if not (volume / name).is_symlink():
            os.symlink(f"..data/{name}", volume / name)
    if old is not None:
        for child in (volume / old).iterdir():
            child.unlink()
        (volume / old).rmdir()


def test_replicas_behind_a_service_update_from_a_configmap_without_failures(
        tmp_path: Path, registry: RegistryServer) -> None:
    v1 = push_sleep_app(registry, "k8s/shop", "v1", version="v1")
    v2 = push_sleep_app(registry, "k8s/shop", "v2", version="v2")
    port = free_port()
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]

    def configmap(ref: str, host: str) -> dict[str, str]:
        text = app_file(ref, port).replace(f"127.0.0.1:{port}", f"{host}:{port}")
        return {"shop.json": text}

    with ExitStack() as stack:
        for i, host in enumerate(hosts):
            volume = tmp_path / f"pod{i}" / "apps.d"
            project_configmap(volume, configmap(v1, host), 1)
            stack.enter_context(run_tauon(tmp_path / f"pod{i}", watch_dir=volume,
                                          cache_dir=tmp_path / f"pod{i}" / "cache"))
        endpoints = [f"http://{host}:{port}/?0" for host in hosts]
        for url in endpoints:
            wait_http(url, contains="in v1")

        with Load(endpoints, clients=3, timeout=10) as load:
            for i, host in enumerate(hosts):
                time.sleep(0.7)  # kubelet updates each pod at its own moment
                project_configmap(tmp_path / f"pod{i}" / "apps.d", configmap(v2, host), 2)
            for url in endpoints:
                wait_http(url, contains="in v2", timeout=30)
            time.sleep(0.5)
    assert load.unexpected("200") == {}
    assert load.count("200") > 50
