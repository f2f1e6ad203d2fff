"""`[[client_tls]]` parsing (runtimeconfig/client_tls.py): Spin's root defaults, paths against the
file's directory, host normalisation, and the first table naming a (component, host) pair winning."""

from __future__ import annotations

import ssl
from pathlib import Path

from support.certs import TestCA
from tauon.runtimeconfig.client_tls import component_contexts
from tauon.runtimeconfig.parse import parse_runtime_config


def parse(base: Path, text: str):  # type: ignore[no-untyped-def]
    return parse_runtime_config(base / "rc.toml", text.encode()).client_tls


def test_root_defaults_as_spin_picks_them(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    (tmp_path / "roots.pem").write_bytes(ca.cert.read_bytes())
    head = '[[client_tls]]\ncomponent_ids = ["web"]\nhosts = ["API.example.com", "[::1]"]\n'
    (bare,) = parse(tmp_path, head)
    assert (bare.use_platform_roots, bare.use_webpki_roots, bare.hosts) == (True, False,
                                                                           ("api.example.com", "::1"))
    (roots,) = parse(tmp_path, head + 'ca_roots_file = "roots.pem"\n')
    assert (roots.use_platform_roots, roots.use_webpki_roots) == (False, False)
    assert roots.ca_roots_file == str(tmp_path / "roots.pem")
    (webpki,) = parse(tmp_path, head + "ca_use_webpki_roots = true\n")
    assert (webpki.use_platform_roots, webpki.use_webpki_roots) == (False, True)
    assert webpki.context().cert_store_stats()["x509_ca"] > 50  # certifi's Mozilla bundle


def test_first_table_for_a_component_and_host_wins(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    configs = parse(tmp_path, f'''
[[client_tls]]
component_ids = ["web"]
hosts = ["a.example"]
ca_roots_file = "{ca.cert}"

[[client_tls]]
component_ids = ["web", "worker"]
hosts = ["a.example", "b.example"]
ca_use_platform_roots = true
''')
    web = component_contexts(configs, "web")
    assert set(web) == {"a.example", "b.example"}
    assert web["a.example"].cert_store_stats()["x509_ca"] == 1  # only the test CA
    assert web["a.example"].verify_mode == ssl.CERT_REQUIRED and web["a.example"].check_hostname
    assert set(component_contexts(configs, "worker")) == {"a.example", "b.example"}
    assert component_contexts(configs, "nobody") == {}
