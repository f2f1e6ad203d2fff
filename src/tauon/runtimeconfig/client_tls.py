"""`[[client_tls]]` of a runtime config: the TLS client settings outbound HTTPS uses for some hosts
of some components, as Spin's factor-outbound-networking (runtime_config/spin.rs, tls.rs) reads and
applies them.

Keys: `component_ids` and `hosts` (both non-empty; a host is a name or IP without a port),
`ca_use_platform_roots`, `ca_use_webpki_roots`, `ca_roots_file`, `client_cert_file` with
`client_private_key_file` (both or neither). Roots as Spin picks them: neither `ca_use_*` key set ->
the platform roots unless `ca_roots_file` is given; only one set -> the other is off. tauon's
"platform roots" are OpenSSL's default verify paths (the system store); its "webpki roots" are
certifi's Mozilla bundle (what webpki-roots is built from). The first table naming a (component, host)
pair wins. Paths resolve against the TOML file's directory and the files are loaded at parse time, so
a bad file fails the change naming the table and key. Certificates and keys are never logged.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tauon.runtimeconfig.errors import RuntimeConfigError

_KEYS = ("component_ids", "hosts", "ca_use_platform_roots", "ca_use_webpki_roots", "ca_roots_file",
         "client_cert_file", "client_private_key_file")


@dataclass(frozen=True, slots=True)
class ClientTlsConfig:
    component_ids: tuple[str, ...]
    hosts: tuple[str, ...]
    use_platform_roots: bool
    use_webpki_roots: bool
    ca_roots_file: str | None = None
    client_cert_file: str | None = None
    client_private_key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        """A new client context (raises OSError / ssl.SSLError for an unreadable or bad file)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check and verification required
        if self.use_platform_roots:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.use_webpki_roots:
            import certifi  # requests' dependency, so always installed with tauon

            ctx.load_verify_locations(cafile=certifi.where())
        if self.ca_roots_file is not None:
            ctx.load_verify_locations(cafile=self.ca_roots_file)
        if self.client_cert_file is not None and self.client_private_key_file is not None:
            ctx.load_cert_chain(self.client_cert_file, self.client_private_key_file)
        return ctx


def client_tls(value: Any, base: Path) -> tuple[ClientTlsConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RuntimeConfigError("must be an array of tables", where="client_tls",
                                 hint='write [[client_tls]] with component_ids = [...] and hosts = [...]')
    return tuple(_one(f"client_tls[{i}]", entry, base) for i, entry in enumerate(value))


def _strings(where: str, entry: dict[str, Any], key: str) -> tuple[str, ...]:
    value = entry.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        example = "my-component" if key == "component_ids" else "api.example.com"
        raise RuntimeConfigError("must be a non-empty list of strings", where=f"{where}.{key}",
                                 hint=f'e.g. {key} = ["{example}"]')
    return tuple(value)


def _host(where: str, host: str) -> str:
    text = host.strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if not text or "/" in text or "@" in text or (":" in bare and not text.startswith("[")
                                                   and text.count(":") == 1):
        raise RuntimeConfigError(f"invalid TLS host {host!r}; ports are not supported",
                                 where=f"{where}.hosts", hint="a host name or IP address without a port")
    return bare


def _flag(where: str, entry: dict[str, Any], key: str) -> bool | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, bool):
        raise RuntimeConfigError(f"must be true or false, got {value!r}", where=f"{where}.{key}")
    return value


def _path(where: str, entry: dict[str, Any], key: str, base: Path) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RuntimeConfigError("must be a path string", where=f"{where}.{key}")
    return str(base / Path(value).expanduser())


def _one(where: str, entry: Any, base: Path) -> ClientTlsConfig:
    if not isinstance(entry, dict):
        raise RuntimeConfigError("must be a table", where=where)
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise RuntimeConfigError(f"unknown key(s) {', '.join(map(repr, unknown))}", where=where,
                                 hint=f"[[client_tls]] takes {', '.join(_KEYS)}")
    platform, webpki = (_flag(where, entry, k) for k in ("ca_use_platform_roots", "ca_use_webpki_roots"))
    roots = _path(where, entry, "ca_roots_file", base)
    if platform is None and webpki is None:
        platform, webpki = roots is None, False
    cert, key = (_path(where, entry, k, base) for k in ("client_cert_file", "client_private_key_file"))
    if (cert is None) != (key is None):
        given, missing = (("client_cert_file", "client_private_key_file") if key is None
                          else ("client_private_key_file", "client_cert_file"))
        raise RuntimeConfigError(f"is required with {given}", where=f"{where}.{missing}",
                                 hint="give both or neither")
    config = ClientTlsConfig(_strings(where, entry, "component_ids"),
                             tuple(_host(where, h) for h in _strings(where, entry, "hosts")),
                             bool(platform), bool(webpki), roots, cert, key)
    if not (config.use_platform_roots or config.use_webpki_roots or roots):
        raise RuntimeConfigError("trusts no roots", where=where,
                                 hint="set ca_roots_file, ca_use_platform_roots or ca_use_webpki_roots")
    _check_files(where, config)
    return config


def _check_files(where: str, config: ClientTlsConfig) -> None:
    """Load each file once now, so a bad one fails the change naming its key (never its content)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if config.ca_roots_file is not None:
        try:
            probe.load_verify_locations(cafile=config.ca_roots_file)
        except (OSError, ssl.SSLError) as exc:
            raise RuntimeConfigError(f"failed to load certificate(s) from '{config.ca_roots_file}': "
                                     f"{_reason(exc)}", where=f"{where}.ca_roots_file",
                                     hint="a PEM file of CA certificates") from None
    if config.client_cert_file is not None and config.client_private_key_file is not None:
        try:
            probe.load_cert_chain(config.client_cert_file, config.client_private_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise RuntimeConfigError(f"failed to load the client certificate '{config.client_cert_file}' "
                                     f"with key '{config.client_private_key_file}': {_reason(exc)}",
                                     where=f"{where}.client_cert_file",
                                     hint="PEM files: the certificate chain and its unencrypted private key"
                                     ) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "not valid PEM"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc)


def component_contexts(configs: tuple[ClientTlsConfig, ...], component_id: str,
                       ) -> Mapping[str, ssl.SSLContext]:
    """host -> the TLS client context for that host of this component (first table wins)."""
    out: dict[str, ssl.SSLContext] = {}
    for config in configs:
        if component_id not in config.component_ids:
            continue
        hosts = [h for h in config.hosts if h not in out]
        if hosts:
            ctx = config.context()
            for host in hosts:
                out[host] = ctx
    return out
