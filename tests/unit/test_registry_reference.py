from __future__ import annotations

from pathlib import Path

import pytest

from tauon.errors import PullError
from tauon.registry.reference import Reference, find_layout, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ghcr.io/acme/shop:v3", Reference("ghcr.io", "acme/shop", "v3")),
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", "latest")),
        ("localhost/a/b/c:1.0", Reference("localhost", "a/b/c", "1.0")),
        (f"ghcr.io/acme/shop@{DIGEST}", Reference("ghcr.io", "acme/shop", None, DIGEST)),
        (f"ghcr.io/acme/shop:v3@{DIGEST}", Reference("ghcr.io", "acme/shop", "v3", DIGEST)),
        ("nginx", Reference("docker.io", "library/nginx", "latest")),
        ("acme/app:v1", Reference("docker.io", "acme/app", "v1")),
        ("docker.io/nginx:1", Reference("docker.io", "library/nginx", "1")),
        ("index.docker.io/acme/app", Reference("docker.io", "acme/app", "latest")),
        ("my-registry.example.com:8443/team_x/app.v2:rc-1", Reference("my-registry.example.com:8443",
                                                                       "team_x/app.v2", "rc-1")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_docker_hub_hosts() -> None:
    ref = parse_reference("nginx")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.auth_key == "index.docker.io"
    other = parse_reference("127.0.0.1:5000/app")
    assert (other.api_host, other.auth_key) == ("127.0.0.1:5000", "127.0.0.1:5000")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (" ghcr.io/a", "spaces"),
        ("https://ghcr.io/a:1", "URL scheme"),
        ("ghcr.io/Acme/app", "'Acme'"),
        ("ghcr.io/a//b", "''"),
        ("ghcr.io/a:bad tag", "tag"),
        ("ghcr.io/a@sha256:abc", "not a valid digest"),
        ("ghcr.io/a@md5:" + "a" * 32, "not a valid digest"),
        (f"ghcr.io/a@sha256:{'AB' * 32}", "not a valid digest"),
    ],
)
def test_parse_reference_rejects(text: str, fragment: str) -> None:
    with pytest.raises(PullError, match=fragment.replace("(", r"\(")):
        parse_reference(text)


def _layout(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "oci-layout").write_text("{}")
    (path / "index.json").write_text('{"manifests": []}')
    return path


def test_find_layout_paths(tmp_path: Path) -> None:
    app = _layout(tmp_path / "app")
    assert find_layout("ghcr.io/acme/app:v1", tmp_path) is None
    assert find_layout("app", tmp_path) == find_layout("./app", tmp_path)
    found = find_layout("./app", tmp_path)
    assert found is not None and found.directory == app and found.tag is None
    tagged = find_layout("./app:v2", tmp_path)
    assert tagged is not None and (tagged.directory, tagged.tag) == (app, "v2")
    pinned = find_layout(f"{app}@{DIGEST}", Path("/nonexistent"))
    assert pinned is not None and (pinned.directory, pinned.digest) == (app, DIGEST)
    # A bare name that happens to be a non-layout directory stays a registry reference.
    (tmp_path / "plain").mkdir()
    assert find_layout("plain", tmp_path) is None


def test_find_layout_explicit_errors(tmp_path: Path) -> None:
    with pytest.raises(PullError, match="does not exist"):
        find_layout("./missing", tmp_path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(PullError, match="not an OCI image layout"):
        find_layout("./plain", tmp_path)
