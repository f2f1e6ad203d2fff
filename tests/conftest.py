"""Session-wide fixtures: a real docker-registry, with and without basic auth, and a cache dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.registry import REGISTRY_PASSWORD, REGISTRY_USER, RegistryServer, make_htpasswd, run_registry

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ starts real processes: mark it, so that
    `pytest -m "not integration"` is the fast unit run whatever a module declares."""
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous plain-HTTP registry. Tests that stop it must restart it (`with registry.stopped():`)."""
    with run_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry requiring HTTP basic auth as REGISTRY_USER / REGISTRY_PASSWORD (htpasswd, bcrypt)."""
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd = make_htpasswd(root / "htpasswd", REGISTRY_USER, REGISTRY_PASSWORD)
    with run_registry(root / "server", htpasswd=htpasswd) as server:
        yield server


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
