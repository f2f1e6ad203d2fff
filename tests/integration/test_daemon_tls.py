"""HTTPS apps in the real tauon process: an openssl-made CA, certificates rotated under continuous load
(a file rewrite and a Kubernetes-style `..data` symlink swap) with `--workers 2`, a bad pair that
keeps the old one serving, and what a TLS listener tells the guest (Spin's scheme rules)."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.apps import push_app
from support.certs import Leaf, TestCA, https_get
from support.daemon import TauonProcess, free_port, run_tauon
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "tauon" / "images" / "hello"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def leaves(ca: TestCA) -> list[Leaf]:
    return [ca.issue(f"leaf{i}") for i in range(3)]


def client(ca: TestCA) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca.cert))


def install(leaf: Leaf, cert: Path, key: Path) -> None:
    cert.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(leaf.cert, cert)
    shutil.copyfile(leaf.key, key)
    key.chmod(0o600)  # readable by tauon's user only, as certbot leaves it


def status_of(tauon: TauonProcess, app: str) -> dict[str, Any]:
    apps = httpx.get(f"{tauon.admin}/status", timeout=5).json()["apps"]
    return next(a for a in apps if a["app"] == app)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def wait_https(port: int, context: ssl.SSLContext, timeout: float = 60.0) -> str:
    """Until the app answers 200 over verified TLS; the serial it served."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            serial, status, _ = https_get(port, context, "/hello")
            if status == 200:
                return serial
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"https://127.0.0.1:{port} did not answer within {timeout}s")
        time.sleep(0.1)


def write_app(path: Path, port: int, cert: str, key: str, reference: str = str(HELLO), **extra: Any) -> None:
    path.write_text(json.dumps({"reference": reference, "address": f"127.0.0.1:{port}",
                                "tls": {"cert": cert, "key": key}, **extra}))


class Load:
    """Clients hammering an app while its certificate changes: threads opening a new verified TLS
    connection per request (each one a handshake), and one keep-alive connection that must live
    through every rotation. Records failures and the serial each handshake saw."""

    def __init__(self, port: int, context: ssl.SSLContext, threads: int = 3) -> None:
        self.port, self.context = port, context
        self.failures: list[str] = []
        self.serials: list[str] = []
        self.kept_alive = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fresh, daemon=True) for _ in range(threads)]
        self._threads.append(threading.Thread(target=self._keep_alive, daemon=True))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _fresh(self) -> None:
        while not self._stop.is_set():
            try:
                serial, status, _ = https_get(self.port, self.context, "/hello")
                if status != 200:
                    self.failures.append(f"status {status}")
                self.serials.append(serial)
            except Exception as exc:
                self.failures.append(repr(exc))

    def _keep_alive(self) -> None:
        with httpx.Client(verify=self.context, timeout=20) as http:
            while not self._stop.is_set():
                try:
                    r = http.get(f"https://127.0.0.1:{self.port}/hello")
                    if r.status_code != 200:
                        self.failures.append(f"keep-alive status {r.status_code}")
                    self.kept_alive += 1
                except Exception as exc:
                    self.failures.append(f"keep-alive: {exc!r}")
                time.sleep(0.01)

    def wait_serial(self, serial: str, timeout: float = 30.0) -> None:
        """Until a new handshake has served `serial`, then until every handshake does (each process
        reloads on its own poll), with 40 in a row to show it."""
        wait_until(lambda: serial in self.serials[-200:], f"a handshake serving {serial}", timeout)
        def settled() -> bool:
            tail = self.serials[-40:]
            return len(tail) == 40 and all(s == serial for s in tail)
        mark = len(self.serials)
        wait_until(lambda: len(self.serials) > mark + 40 and settled(), f"only {serial} served", timeout)


def test_rotation_under_load_with_workers(tmp_path: Path, ca: TestCA, leaves: list[Leaf]) -> None:
    """A file rewrite (certbot-style, the certificate then the key) and a ConfigMap `..data` swap,
    each under continuous load on `--workers 2`: no failed request, no dropped keep-alive connection,
    and soon every new handshake in either process gets the new certificate."""
    apps = tmp_path / "apps"
    apps.mkdir()
    install(leaves[0], apps / "certs" / "fullchain.pem", apps / "certs" / "privkey.pem")
    secret = apps / "secret"  # the layout kubelet writes for a Secret or ConfigMap volume
    install(leaves[0], secret / "..2026_01" / "tls.crt", secret / "..2026_01" / "tls.key")
    (secret / "..data").symlink_to("..2026_01")
    (secret / "tls.crt").symlink_to("..data/tls.crt")
    (secret / "tls.key").symlink_to("..data/tls.key")
    files_port, k8s_port = free_port(), free_port()
    write_app(apps / "files.json", files_port, "certs/fullchain.pem", "certs/privkey.pem")
    write_app(apps / "k8s.json", k8s_port, "secret/tls.crt", "secret/tls.key")
    context = client(ca)
    with run_tauon(tmp_path, "--workers", "2", watch_dir=apps, admin=True) as tauon:
        assert wait_https(files_port, context) == wait_https(k8s_port, context) == leaves[0].serial
        tauon.wait_log(r"worker 1 \(pid \d+\) serves 2 apps", timeout=60)
        with Load(files_port, context) as load:
            wait_until(lambda: len(load.serials) > 20, "load running")
            shutil.copyfile(leaves[1].cert, apps / "certs" / "fullchain.pem")  # rewritten in place
            time.sleep(0.3)
            shutil.copyfile(leaves[1].key, apps / "certs" / "privkey.pem")
            load.wait_serial(leaves[1].serial)
            kept = load.kept_alive
            wait_until(lambda: load.kept_alive > kept + 5, "the keep-alive connection still serving")
        assert load.failures == [] and leaves[0].serial in load.serials
        with Load(k8s_port, context) as load:
            wait_until(lambda: len(load.serials) > 20, "load running")
            install(leaves[2], secret / "..2026_02" / "tls.crt", secret / "..2026_02" / "tls.key")
            (secret / "..data_tmp").symlink_to("..2026_02")
            os.replace(secret / "..data_tmp", secret / "..data")  # kubelet's atomic swap
            shutil.rmtree(secret / "..2026_01")
            load.wait_serial(leaves[2].serial)
            kept = load.kept_alive
            wait_until(lambda: load.kept_alive > kept + 5, "the keep-alive connection still serving")
        assert load.failures == []
        processes = httpx.get(f"{tauon.admin}/status").json()["processes"]
        assert len(processes) == 2 and all(p["requests"] > 0 for p in processes), processes
        log = tauon.log()
        assert "files.json: TLS certificate reloaded" in log and "k8s.json: TLS certificate reloaded" in log
        assert status_of(tauon, "files.json")["problem"] is None


def test_a_bad_pair_keeps_the_old_certificate_serving(tmp_path: Path, ca: TestCA, leaves: list[Leaf]) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    cert, key = apps / "fullchain.pem", apps / "privkey.pem"
    install(leaves[0], cert, key)
    port = free_port()
    write_app(apps / "shop.json", port, "fullchain.pem", "privkey.pem")
    context = client(ca)
    with run_tauon(tmp_path, "--workers", "1", watch_dir=apps, admin=True) as tauon:
        assert wait_https(port, context) == leaves[0].serial
        shutil.copyfile(leaves[1].key, key)  # a renewal that wrote the key of another certificate
        wait_until(lambda: status_of(tauon, "shop.json")["problem"] is not None, "a reported problem")
        problem = status_of(tauon, "shop.json")["problem"]
        assert problem == (f"shop.json: field 'tls.key': {key} is not the key of the certificate in {cert} "
                           "(use the key the certificate was issued for); the previous certificate keeps "
                           "serving")
        assert problem in tauon.log()
        row = status_of(tauon, "shop.json")
        assert row["state"] == "running" and row["error"] is None
        for _ in range(5):
            assert https_get(port, context, "/hello")[:2] == (leaves[0].serial, 200)
        status_table = subprocess.run([sys.executable, "-m", "tauon", "status", "--admin", tauon.admin[7:]],
                                      capture_output=True, text=True, check=True).stdout
        assert "is not the key of the certificate" in status_table
        shutil.copyfile(leaves[1].cert, cert)  # the operator completes the pair
        wait_until(lambda: status_of(tauon, "shop.json")["problem"] is None, "the problem cleared")
        assert https_get(port, context, "/hello")[:2] == (leaves[1].serial, 200)
        # The app file names other files: swapped in on the same listener, without a gap.
        install(leaves[2], apps / "new" / "cert.pem", apps / "new" / "key.pem")
        with Load(port, context, threads=1) as load:
            wait_until(lambda: len(load.serials) > 5, "load running")
            write_app(apps / "shop.json", port, "new/cert.pem", "new/key.pem")
            tauon.wait_log(r"shop.json: updated to generation 2")
            load.wait_serial(leaves[2].serial)
        assert load.failures == []


def test_unusable_files_fail_the_app_with_the_field_and_fix(tmp_path: Path, ca: TestCA,
                                                            leaves: list[Leaf]) -> None:
    """Lepton mode takes the same field (relative to the apps file). Files that cannot be served fail
    the app with an error naming them; once they appear the retry serves."""
    base = tmp_path / "conf"
    base.mkdir()
    port = free_port()
    (base / "lepton.json").write_text(json.dumps({"apps": [{
        "name": "shop", "reference": str(HELLO), "address": f"127.0.0.1:{port}",
        "tls": {"cert": "tls/fullchain.pem", "key": "tls/privkey.pem"}}]}))
    context = client(ca)
    with run_tauon(tmp_path, apps_file=base / "lepton.json", admin=True) as tauon:
        wait_until(lambda: status_of(tauon, "shop")["state"] == "failed", "the app failed")
        error = status_of(tauon, "shop")["error"]
        assert error.startswith(f"shop: field 'tls.cert': {base / 'tls' / 'fullchain.pem'} does not exist "
                                "(relative paths resolve against the app file's directory)")
        install(leaves[0], base / "tls" / "fullchain.pem", base / "tls" / "privkey.pem")
        assert wait_https(port, context) == leaves[0].serial
        assert f"Serving https://127.0.0.1:{port}" in tauon.log()


@pytest.fixture(scope="module")
def handler_ref(registry: RegistryServer) -> str:
    """The wasi:http test handler (its `/info` prints the request as the guest sees it)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    wasm = (ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm").read_bytes()
    app = SpinAppSpec(name="handler", components=[SpinComponent(
        id="handler", wasm=wasm, metadata={"allowed_outbound_hosts": ["http://self"]})],
                      triggers=[{"route": "/...", "component": "handler"}])
    return push_app(registry, "tls/handler", "v1", app)


def test_guest_sees_spins_scheme_rules(tmp_path: Path, ca: TestCA, leaves: list[Leaf],
                                       handler_ref: str) -> None:
    """On a TLS listener Spin's `spin-full-url` says https, while wasi:http 0.2 guests are given
    `scheme = HTTP` (Spin passes Scheme::Http to them even on TLS); a self-request goes to the
    listener over TLS, as Spin's self-request origin takes the listener's scheme (here the guest's
    outbound HTTP trusts the test CA through SSL_CERT_FILE). Switching `tls` off in the app file moves
    the app to a plain listener on the same address."""
    apps = tmp_path / "apps"
    apps.mkdir()
    install(leaves[0], apps / "cert.pem", apps / "key.pem")
    port = free_port()
    write_app(apps / "handler.json", port, "cert.pem", "key.pem", reference=handler_ref, insecure=True)
    context = client(ca)
    with run_tauon(tmp_path, "--workers", "1", watch_dir=apps, admin=True,
                   env={"SSL_CERT_FILE": str(ca.cert)}) as tauon:
        tauon.wait_log(r"handler.json: serving", timeout=120)
        with httpx.Client(verify=context) as http:
            info = http.get(f"https://localhost:{port}/info?x=1").text
            cookie = "c=" + "x" * 100_000  # Spin's hyper takes heads up to 408 KiB; the guest gets it whole
            big = http.get(f"https://localhost:{port}/info", headers={"cookie": cookie})
        assert big.status_code == 200 and f"header cookie: {cookie}\n" in big.text
        assert "scheme=HTTP\n" in info
        assert f"header spin-full-url: https://localhost:{port}/info?x=1\n" in info
        curl = subprocess.run(["curl", "-sS", "--cacert", str(ca.cert), f"https://127.0.0.1:{port}/info"],
                              capture_output=True, text=True, timeout=30)
        assert curl.returncode == 0 and f"spin-full-url: https://127.0.0.1:{port}/info" in curl.stdout
        selfreq = httpx.get(f"https://localhost:{port}/outbound?http://self.alt/info", verify=context).text
        assert selfreq.startswith("status=200\n") and "scheme=HTTP\n" in selfreq
        assert f"spin-full-url: https://127.0.0.1:{port}/info" in selfreq
        (apps / "handler.json").write_text(json.dumps(
            {"reference": handler_ref, "address": f"127.0.0.1:{port}", "insecure": True}))
        tauon.wait_log(r"handler.json: updated to generation 2", timeout=60)
        info = httpx.get(f"http://127.0.0.1:{port}/info").text
        assert "scheme=HTTP\n" in info and f"spin-full-url: http://127.0.0.1:{port}/info" in info
        selfreq = httpx.get(f"http://127.0.0.1:{port}/outbound?http://self.alt/info").text
        assert selfreq.startswith("status=200\n")
        assert f"spin-full-url: http://127.0.0.1:{port}/info" in selfreq
