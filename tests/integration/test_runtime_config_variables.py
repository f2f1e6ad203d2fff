"""Variables providers from a runtime config (runtimeconfig/providers.py) resolving app variables in
Spin's order: app file > [[variables_provider]]s in order > SPIN_VARIABLE_* > default.

Vault cannot be installed here: `VaultServer` is a small loopback server speaking Vault's KV v2 read API
(GET /v1/<mount>/data/<path> with X-Vault-Token; 200 {"data": {"data": {...}}}, 404 when absent, 403 for
a bad token). That boundary is the only fake; everything else is tauon's real resolver.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tauon.errors import LoadError
from tauon.runtimeconfig.parse import parse_runtime_config
from tauon.runtimeconfig.providers import variable_providers
from tauon.services.variables import VariableResolver

pytestmark = pytest.mark.integration
TOKEN = "hvs.vault-token-7f3a"


@contextmanager
def vault_server(secrets: dict[str, dict[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """Vault KV v2 reads of `secrets` (path under mount 'secret' -> fields); yields (url, paths asked)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if self.headers.get("X-Vault-Token") != TOKEN:
                self._reply(403, {"errors": ["permission denied"]})
                return
            prefix = "/v1/secret/data/"
            data = secrets.get(self.path[len(prefix):]) if self.path.startswith(prefix) else None
            if data is None:
                self._reply(404, {"errors": []})
                return
            self._reply(200, {"data": {"data": data, "metadata": {"version": 1}}})

        def _reply(self, status: int, doc: object) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def resolver(tmp_path: Path, toml: str, env: dict[str, str], provided: dict[str, str] | None = None,
             names: tuple[str, ...] = ("api_key", "region", "colour", "mode", "fallback"),
             ) -> VariableResolver:
    path = tmp_path / "rc.toml"
    path.write_text(toml)
    config = parse_runtime_config(path, path.read_bytes())
    decls = {name: {"default": "dflt" if name == "fallback" else None, "secret": name == "api_key"}
             for name in names}
    return VariableResolver(decls, provided or {}, env, variable_providers(config, env))


def test_env_dotenv_static_vault_chain(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text('# comment\nSHOP_REGION="eu-west"\nexport SHOP_MODE=from-dotenv\n')
    with vault_server({"shop/api_key": {"value": "vault-secret-91c2"},
                       "shop/mode": {"value": "from-vault"}}) as (url, asked):
        toml = f'''
[[variables_provider]]
type = "env"
prefix = "SHOP"
dotenv_path = "app.env"
[[variables_provider]]
type = "static"
values = {{ colour = "static-blue", mode = "from-static" }}
[[variables_provider]]
type = "vault"
url = "{url}"
token = "{TOKEN}"
mount = "secret"
prefix = "shop"
'''
        env = {"SHOP_COLOUR": "env-green", "SPIN_VARIABLE_FALLBACK": "implicit-env"}
        r = resolver(tmp_path, toml, env, provided={"region": "app-file"})
        assert r.resolve("region") == "app-file"  # the app file (spin up --variable) wins
        assert r.resolve("colour") == "env-green"  # the first provider: env with prefix
        assert r.resolve("mode") == "from-dotenv"  # the env provider's dotenv file, before static
        assert r.resolve("api_key") == "vault-secret-91c2"  # only Vault has it: a secret
        assert r.resolve("fallback") == "implicit-env"  # no provider: SPIN_VARIABLE_*, before the default
        assert "/v1/secret/data/shop/api_key" in asked
        assert "vault-secret-91c2" not in repr(r)


def test_vault_failures_fail_the_generation_without_the_token(tmp_path: Path) -> None:
    with vault_server({}) as (url, _asked):
        toml = (f'[[variables_provider]]\ntype = "vault"\nurl = "{url}"\ntoken = "wrong-token-55"\n'
                'mount = "secret"\n')
        with pytest.raises(LoadError) as info:
            resolver(tmp_path, toml, {}, names=("api_key",))
    text = str(info.value)
    assert "HTTP 403" in text and "'api_key'" in text and "wrong-token-55" not in text


def test_vault_404_passes_to_the_next_provider(tmp_path: Path) -> None:
    with vault_server({}) as (url, asked):
        toml = (f'[[variables_provider]]\ntype = "vault"\nurl = "{url}"\ntoken = "{TOKEN}"\n'
                'mount = "secret"\n'
                '[[variables_provider]]\ntype = "static"\nvalues = { api_key = "static-key" }\n')
        r = resolver(tmp_path, toml, {}, names=("api_key",))
    assert r.resolve("api_key") == "static-key" and asked == ["/v1/secret/data/api_key"]
