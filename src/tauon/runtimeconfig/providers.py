"""Variables providers from the runtime config (`[[variables_provider]]`), as Spin's crates
variables-{env,static,vault} resolve them. Each provider is a function name -> value or None (not
mine: ask the next one); services/variables.py asks them in the file's order, after the app file's
`variables` and before tauon's own SPIN_VARIABLE_* environment and the defaults (Spin's order).

Values are resolved once per generation. Neither a value nor a Vault token ever reaches an error
message: errors name the provider and the variable only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from tauon.errors import LoadError
from tauon.runtimeconfig.model import (
    EnvProviderConfig,
    ProviderConfig,
    RuntimeConfig,
    StaticProviderConfig,
    VaultProviderConfig,
    redacted_url,
)

Provider = Callable[[str], str | None]
DEFAULT_PREFIX = "SPIN_VARIABLE"
VAULT_TIMEOUT = 10.0


def variable_providers(config: RuntimeConfig | None, env: Mapping[str, str]) -> list[Provider]:
    if config is None:
        return []
    return [_provider(p, env, config.file) for p in config.variables_providers]


def _provider(config: ProviderConfig, env: Mapping[str, str], file: str) -> Provider:
    if isinstance(config, StaticProviderConfig):
        return config.values.get
    if isinstance(config, EnvProviderConfig):
        return _env_provider(config, env, file)
    return _vault_provider(config, file)


def _env_provider(config: EnvProviderConfig, env: Mapping[str, str], file: str) -> Provider:
    prefix = config.prefix if config.prefix is not None else DEFAULT_PREFIX
    dotenv: dict[str, str] | None = None

    def get(name: str) -> str | None:
        nonlocal dotenv
        key = f"{prefix}_{name.upper()}"
        if key in env:
            return env[key]
        if config.dotenv_path is None:
            return None
        if dotenv is None:
            dotenv = read_dotenv(Path(config.dotenv_path), file)
        return dotenv.get(key)

    return get


def read_dotenv(path: Path, file: str) -> dict[str, str]:
    """KEY=VALUE lines as dotenv files write them: comments, `export`, single or double quotes.
    A missing file is empty (Spin's provider ignores it too)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"runtime config {file}: cannot read dotenv file {path}: {exc}",
                        field="runtime_config", hint="check the variables_provider's dotenv_path") from None
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().split("=", 1)[1].strip().startswith('"'):
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key.strip()] = value
    return out


def _vault_provider(config: VaultProviderConfig, file: str) -> Provider:
    """Vault's KV v2 read: GET <url>/v1/<mount>/data/<prefix/><name> with X-Vault-Token; the secret's
    `value` field. 404: not there (the next provider is asked); any other failure fails the app."""
    base = config.url.rstrip("/")

    def get(name: str) -> str | None:
        path = f"{config.prefix}/{name}" if config.prefix else name
        url = f"{base}/v1/{quote(config.mount.strip('/'))}/data/{quote(path)}"
        request = urllib.request.Request(url, headers={"X-Vault-Token": config.token})

        def fail(why: str) -> LoadError:
            return LoadError(f"runtime config {file}: Vault at {redacted_url(base)} failed to give "
                             f"variable {name!r}: {why}", field="runtime_config",
                             hint="check the vault provider's url, token and mount")

        try:
            with urllib.request.urlopen(request, timeout=VAULT_TIMEOUT) as response:
                body = json.loads(response.read(1 << 20))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise fail(f"HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise fail(type(exc).__name__ if isinstance(exc, ValueError) else str(exc)) from None
        value = body.get("data", {}).get("data", {}).get("value") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise fail("the secret has no string field 'value'")
        return value

    return get
