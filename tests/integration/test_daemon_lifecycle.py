"""The real `tauon` process against a real registry: start, edit (every editor pattern), stop."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from support.apps import AppImages, app_file, push_sleep_app
from support.daemon import free_port, run_tauon, wait_http, wait_refused
from support.registry import RegistryServer


@pytest.fixture(scope="module")
def images(registry: RegistryServer) -> AppImages:
    return AppImages(
        v1=push_sleep_app(registry, "lifecycle/app", "v1", version="v1"),
        v2=push_sleep_app(registry, "lifecycle/app", "v2", version="v2"),
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cp_edit_rm(tmp_path: Path, images: AppImages, workers: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    staging = tmp_path / "staging.json"
    with run_tauon(tmp_path, "--workers", workers) as tauon:
        staging.write_text(app_file(images.v1, port))
        shutil.copy(staging, tauon.watch_dir / "app.json")  # cp: a plain modify of a new file
        wait_http(url, contains="in v1")
        log = tauon.wait_log(r"app\.json: serving")
        assert f"Serving http://127.0.0.1:{port}" in log
        assert "Available Routes:" in log and "sleepy:" in log

        subprocess.run(["sed", "-i", "s/:v1/:v2/", str(tauon.watch_dir / "app.json")], check=True)
        wait_http(url, contains="in v2")
        tauon.wait_log(r"app\.json: updated to generation 2")

        (tauon.watch_dir / "app.json").unlink()
        wait_refused(url)
        tauon.wait_log(r"app\.json: stopped")


def _vim_save(directory: Path, name: str, text: str) -> None:
    # vim's default: probe file 4913, rename the original to a backup, write anew, delete the backup.
    (directory / "4913").write_text("")
    (directory / "4913").unlink()
    os.rename(directory / name, directory / f"{name}~")
    (directory / name).write_text(text)
    (directory / f"{name}~").unlink()


def _emacs_save(directory: Path, name: str, text: str) -> None:
    os.symlink("user@host.1234:1", directory / f".#{name}")
    os.rename(directory / name, directory / f"{name}~")
    (directory / name).write_text(text)
    (directory / f".#{name}").unlink()


def _atomic_save(directory: Path, name: str, text: str) -> None:
    tmp = directory / f".{name}.XXXX12"
    tmp.write_text(text)
    os.replace(tmp, directory / name)


def _mv_save(directory: Path, name: str, text: str) -> None:
    outside = directory.parent / f"outside-{name}"
    outside.write_text(text)
    shutil.move(str(outside), directory / name)


def _half_written_save(directory: Path, name: str, text: str) -> None:
    with (directory / name).open("w") as fh:
        fh.write(text[: len(text) // 2])
        fh.flush()
        time.sleep(1.5)  # long enough for tauon to see and reject the torn file
        fh.write(text[len(text) // 2 :])


@pytest.mark.parametrize(("save", "workers"), [
    (_vim_save, "1"), (_emacs_save, "1"), (_atomic_save, "1"), (_mv_save, "1"), (_half_written_save, "1"),
    (_atomic_save, "2"), (_half_written_save, "2")],
    ids=["vim", "emacs", "atomic-rename", "mv", "half-written", "atomic-rename-workers",
         "half-written-workers"])
def test_editor_patterns_update_without_downtime(tmp_path: Path, images: AppImages, save: object,
                                                 workers: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path, "--workers", workers) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(images.v1, port))
        wait_http(url, contains="in v1")
        assert callable(save)
        save(tauon.watch_dir, "app.json", app_file(images.v2, port))
        deadline = time.monotonic() + 20
        seen_v2 = False
        while time.monotonic() < deadline:
            r = httpx.get(url, timeout=5)  # must never fail while the edit lands
            assert r.status_code == 200, r.text
            if "in v2" in r.text:
                seen_v2 = True
                break
            time.sleep(0.02)
        assert seen_v2, tauon.log()
        # Temp and backup names never become apps, and the app itself was never stopped.
        log = tauon.log()
        assert re.findall(r"(\S+): new app file", log) == ["app.json"]
        assert "stopped" not in log


def test_touch_and_identical_resave_are_noops(tmp_path: Path, images: AppImages) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path) as tauon:
        path = tauon.watch_dir / "app.json"
        path.write_text(app_file(images.v1, port))
        wait_http(url, contains="in v1")
        path.touch()
        value = json.loads(path.read_text())
        path.write_text(json.dumps(dict(reversed(list(value.items()))), indent=4) + "\n")
        time.sleep(0.5)
        # A later, visible change proves the touch and the re-save were seen and handled before it.
        (tauon.watch_dir / "marker.json").write_text("{}")
        tauon.wait_log(r"marker\.json: field 'reference': is required")
        log = tauon.log()
        assert re.search(r"rescan: changed: .*app\.json", log)
        assert "app file changed" not in log
        assert "generation 2" not in log


def test_bad_json_keeps_last_good_then_recovers(tmp_path: Path, images: AppImages) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path) as tauon:
        path = tauon.watch_dir / "app.json"
        path.write_text(app_file(images.v1, port))
        wait_http(url, contains="in v1")
        path.write_text('{"reference": "oops", ')
        log = tauon.wait_log(r"app\.json: is not valid JSON")
        assert "last good version keeps serving" in log
        assert "in v1" in httpx.get(url).text
        path.write_text(json.dumps({"reference": images.v2, "address": f"127.0.0.1:{port}",
                                    "insecure": True, "colour": "blue"}))
        wait_http(url, contains="in v2")
        assert "ignoring unknown field(s) 'colour'" in tauon.log()


def test_bad_new_file_and_unknown_reference_do_not_disturb_others(
        tmp_path: Path, images: AppImages, registry: RegistryServer) -> None:
    good, other = free_port(), free_port()
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "good.json").write_text(app_file(images.v1, good))
        wait_http(f"http://127.0.0.1:{good}/?0", contains="in v1")
        (tauon.watch_dir / "typo.json").write_text(json.dumps({"reference": images.v1, "adress": "x"}))
        (tauon.watch_dir / "missing.json").write_text(
            app_file(f"{registry.host}/lifecycle/nope:v9", other))
        log = tauon.wait_log(r"typo\.json: field 'address': is required")
        log = tauon.wait_log(r"missing\.json: .*not found")
        assert "lifecycle/nope:v9" in log
        assert httpx.get(f"http://127.0.0.1:{good}/?0").status_code == 200


def test_duplicate_address_first_name_wins(tmp_path: Path, images: AppImages) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "b.json").write_text(app_file(images.v2, port))
        (tauon.watch_dir / "a.json").write_text(app_file(images.v1, port))
        wait_http(url, contains="in v1")
        log = tauon.wait_log(
            r"b\.json: field 'address': address 127\.0\.0\.1:\d+ is already claimed by a\.json")
        assert "remove a.json and b.json will start" in log
        (tauon.watch_dir / "a.json").unlink()
        wait_http(url, contains="in v2")


def test_port_in_use_fails_alone_and_retries(tmp_path: Path, images: AppImages) -> None:
    import socket

    busy, fine = free_port(), free_port()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", busy))
    blocker.listen()
    try:
        with run_tauon(tmp_path) as tauon:
            (tauon.watch_dir / "busy.json").write_text(app_file(images.v1, busy))
            (tauon.watch_dir / "fine.json").write_text(app_file(images.v2, fine))
            log = tauon.wait_log(r"busy\.json: field 'address': cannot listen on 127\.0\.0\.1:\d+: "
                                 r"Address already in use")
            assert "free the port or change the address" in log
            wait_http(f"http://127.0.0.1:{fine}/?0", contains="in v2")
            blocker.close()
            wait_http(f"http://127.0.0.1:{busy}/?0", contains="in v1", timeout=15)
    finally:
        blocker.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_address_change_moves_the_app(tmp_path: Path, images: AppImages, workers: str) -> None:
    first, second = free_port(), free_port()
    with run_tauon(tmp_path, "--workers", workers) as tauon:
        path = tauon.watch_dir / "app.json"
        path.write_text(app_file(images.v1, first))
        wait_http(f"http://127.0.0.1:{first}/?0", contains="in v1")
        path.write_text(app_file(images.v1, second))
        wait_http(f"http://127.0.0.1:{second}/?0", contains="in v1")
        wait_refused(f"http://127.0.0.1:{first}/?0")


def test_configmap_symlink_swap(tmp_path: Path, images: AppImages) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path) as tauon:
        d = tauon.watch_dir
        # What kubelet does for a ConfigMap volume: timestamped dir, ..data symlink, key symlinks.
        (d / "..2026_11_24_10_00_00.000000001").mkdir()
        (d / "..2026_11_24_10_00_00.000000001" / "app.json").write_text(app_file(images.v1, port))
        os.symlink("..2026_11_24_10_00_00.000000001", d / "..data")
        os.symlink("..data/app.json", d / "app.json")
        wait_http(url, contains="in v1")
        (d / "..2026_11_24_10_05_00.000000002").mkdir()
        (d / "..2026_11_24_10_05_00.000000002" / "app.json").write_text(app_file(images.v2, port))
        os.symlink("..2026_11_24_10_05_00.000000002", d / "..data_tmp")
        os.rename(d / "..data_tmp", d / "..data")
        shutil.rmtree(d / "..2026_11_24_10_00_00.000000001")
        wait_http(url, contains="in v2")


def test_watched_directory_deleted_and_recreated(tmp_path: Path, images: AppImages) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(images.v1, port))
        wait_http(url, contains="in v1")
        shutil.rmtree(tauon.watch_dir)
        tauon.wait_log(r"watched directory .* is missing")
        assert "in v1" in httpx.get(url).text  # a vanished directory does not stop apps
        tauon.watch_dir.mkdir()
        (tauon.watch_dir / "app.json").write_text(app_file(images.v2, port))
        wait_http(url, contains="in v2")
        (tauon.watch_dir / "app.json").unlink()  # the re-armed watch sees later events too
        wait_refused(url)


def test_sighup_re_resolves_tags(tmp_path: Path, registry: RegistryServer) -> None:
    import signal

    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    ref = push_sleep_app(registry, "lifecycle/moving", "stable", version="first")
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(ref, port))
        wait_http(url, contains="in first")
        tauon.signal(signal.SIGHUP)
        tauon.wait_log(r"still resolves to")
        push_sleep_app(registry, "lifecycle/moving", "stable", version="second")
        tauon.signal(signal.SIGHUP)
        wait_http(url, contains="in second")


def test_help_documents_every_option() -> None:
    import sys

    out = subprocess.run([sys.executable, "-m", "tauon", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for option in ("--state-root", "--cache-dir", "--log-level", "--log-format", "--drain-timeout",
                   "--resync-interval", "--pull-timeout", "--max-backoff", "--progress", "--workers", "DIR"):
        assert option in out
