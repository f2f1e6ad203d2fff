"""One app file parsed and validated. Pure: the caller reads the bytes.

An app file is a small JSON object in the watched directory; its file name is the app's id. The content
hash is taken over the parsed, normalized value, so re-saving the same settings (whitespace, key order,
`touch`) is not a change.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from tauon.app.plan import Limits
from tauon.control.jsonfile import load_json
from tauon.errors import SpecError
from tauon.model.address import Address
from tauon.runtimeconfig.model import RuntimeConfig

KNOWN_FIELDS = ("reference", "address", "state_dir", "insecure", "ca_bundle", "variables", "limits", "tls",
                "runtime_config")
LIMIT_FIELDS = {
    "request_timeout": "seconds of guest execution per request (number > 0)",
    "memory_mib": "MiB of linear memory per instance (integer >= 1)",
    "max_body_mib": "MiB of request body accepted (integer >= 0)",
    "concurrency": "requests executing at once (integer >= 1)",
}
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TlsSpec:
    """The `tls` field: PEM files for an HTTPS listener, as written (relative to the app file)."""

    cert: str
    """The certificate chain, leaf first (certbot's fullchain.pem)."""
    key: str
    """The private key (PKCS#8, PKCS#1 or SEC1 PEM, unencrypted)."""


@dataclass(frozen=True, slots=True)
class AppSpec:
    id: str
    """The file name, e.g. 'shop.json'."""
    reference: str
    address: Address | None
    """None: the app has no HTTP listener (allowed for apps with only Redis triggers)."""
    state_dir: str | None = None
    insecure: bool = False
    ca_bundle: str | None = None
    """CA certificates for this app's registry; relative paths resolve against the app file's directory."""
    variables: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    tls: TlsSpec | None = None
    """Serve HTTPS with these files; None: plain HTTP."""
    runtime_config: str | None = None
    """A Spin runtime-config.toml, as written (relative to the app file's directory)."""
    runtime: RuntimeConfig | None = None
    """The parsed runtime config (this file's, else the daemon's), attached after parsing (attach.py)."""
    warnings: tuple[str, ...] = ()
    content_hash: str = ""

    @property
    def name(self) -> str:
        return self.id.removesuffix(".json")


def parse_address(value: Any, file: str) -> Address:
    def bad(why: str) -> SpecError:
        return SpecError(
            f"{why}: {value!r}",
            file=file,
            field="address",
            hint="use host:port, e.g. \"127.0.0.1:8080\", \"0.0.0.0:8080\" or \"[::1]:8080\"",
        )

    if not isinstance(value, str) or not value:
        raise bad("must be a non-empty string")
    if value.startswith("["):
        close = value.find("]")
        if close < 0 or value[close + 1 : close + 2] != ":":
            raise bad("an IPv6 address must look like [addr]:port")
        host, port_text = value[1:close], value[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"'{host}' is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise bad("missing the port")
        if ":" in host:
            raise bad("IPv6 addresses need brackets")
        if not _HOST_RE.match(host):
            raise bad(f"'{host}' is not a host name or IP address")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise bad(f"port '{port_text}' is not a number from 1 to 65535")
    return Address(host=host, port=int(port_text))


def _parse_limits(value: Any, file: str) -> Limits:
    if not isinstance(value, dict):
        raise SpecError("must be an object", file=file, field="limits", hint=_limits_hint())
    unknown = sorted(set(value) - set(LIMIT_FIELDS))
    if unknown:
        raise SpecError(
            f"unknown limit(s) {', '.join(unknown)}", file=file, field="limits", hint=_limits_hint()
        )
    defaults = Limits()
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        fld = f"limits.{key}"
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise SpecError(f"must be a number, got {raw!r}", file=file, field=fld, hint=LIMIT_FIELDS[key])
        if key == "request_timeout":
            if raw <= 0:
                raise SpecError("must be > 0", file=file, field=fld, hint=LIMIT_FIELDS[key])
            kwargs["request_timeout"] = float(raw)
            continue
        if raw != int(raw):
            raise SpecError(f"must be a whole number, got {raw!r}", file=file, field=fld,
                            hint=LIMIT_FIELDS[key])
        minimum = 0 if key == "max_body_mib" else 1
        if raw < minimum:
            raise SpecError(f"must be >= {minimum}", file=file, field=fld, hint=LIMIT_FIELDS[key])
        if key == "memory_mib":
            kwargs["max_memory"] = int(raw) * _MIB
        elif key == "max_body_mib":
            kwargs["max_request_body"] = int(raw) * _MIB
        else:
            kwargs["max_concurrency"] = int(raw)
    return Limits(**{**_limits_dict(defaults), **kwargs})


def _limits_dict(limits: Limits) -> dict[str, Any]:
    return {name: getattr(limits, name) for name in limits.__slots__}


def _limits_hint() -> str:
    return "known limits: " + "; ".join(f"{k}: {v}" for k, v in LIMIT_FIELDS.items())


def _parse_state_dir(value: Any, file: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(
            "must be a non-empty string", file=file, field="state_dir",
            hint="a directory name under tauon's state root, e.g. \"shop\", or an absolute path",
        )
    path = PurePosixPath(value)
    if not path.is_absolute() and ".." in path.parts:
        raise SpecError(
            f"'{value}' leaves the state root", file=file, field="state_dir",
            hint="relative state dirs live under tauon's state root; use an absolute path to go elsewhere",
        )
    return value


_TLS_HINT = ('e.g. "tls": {"cert": "fullchain.pem", "key": "privkey.pem"} (PEM files; relative paths '
             "resolve against the app file's directory)")


def _parse_tls(value: Any, file: str) -> TlsSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(f"must be an object with 'cert' and 'key', got {type(value).__name__}",
                        file=file, field="tls", hint=_TLS_HINT)
    unknown = sorted(set(value) - {"cert", "key"})
    if unknown:
        raise SpecError(f"unknown field(s) {', '.join(repr(u) for u in unknown)}", file=file, field="tls",
                        hint="tls takes exactly 'cert' and 'key'")
    paths: dict[str, str] = {}
    for name in ("cert", "key"):
        raw = value.get(name)
        if raw is None:
            raise SpecError("is required", file=file, field=f"tls.{name}", hint=_TLS_HINT)
        if not isinstance(raw, str) or not raw.strip():
            raise SpecError(f"must be a path string, got {raw!r}", file=file, field=f"tls.{name}",
                            hint=_TLS_HINT)
        paths[name] = raw
    return TlsSpec(cert=paths["cert"], key=paths["key"])


def _parse_runtime_config(value: Any, file: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"must be a path string, got {_short(value)}", file=file, field="runtime_config",
                        hint="a Spin runtime-config.toml, relative to the app file's directory")
    return value


def _parse_variables(value: Any, file: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SpecError("must be an object of name -> string", file=file, field="variables")
    out: dict[str, str] = {}
    for key, raw in value.items():
        if not isinstance(raw, str):
            raise SpecError(
                f"value of '{key}' must be a string, got {type(raw).__name__}",
                file=file, field=f"variables.{key}", hint="quote it, e.g. \"42\"",
            )
        out[str(key)] = raw
    return out


def parse_spec(file: str, data: bytes) -> AppSpec:
    """Parse one app file. Raises SpecError naming the file, the field and the fix."""
    value = load_json(file, data, after="the last good version keeps running")
    if not isinstance(value, dict):
        raise SpecError(
            f"must contain a JSON object, found {type(value).__name__}", file=file,
            hint='e.g. {"reference": "ghcr.io/acme/shop:v3", "address": "0.0.0.0:8080"}',
        )
    unknown = sorted(set(value) - set(KNOWN_FIELDS))
    reference = _parse_reference(value.get("reference"), file, unknown)
    if "address" not in value and (hint := _did_you_mean("address", unknown)):
        # A misspelt address is an error; a missing one is fine for a Redis-only app (checked at load).
        raise SpecError("is required (unless the app has only Redis triggers)", file=file, field="address",
                        hint=hint)
    address = parse_address(value["address"], file) if "address" in value else None
    insecure = value.get("insecure", False)
    if not isinstance(insecure, bool):
        raise SpecError(
            f"must be true or false, got {insecure!r}", file=file, field="insecure",
            hint="true allows plain-HTTP registries",
        )
    ca_bundle = value.get("ca_bundle")
    if ca_bundle is not None and (not isinstance(ca_bundle, str) or not ca_bundle.strip()):
        raise SpecError(
            f"must be a path string, got {ca_bundle!r}", file=file, field="ca_bundle",
            hint="a PEM file (or directory) of CA certificates that signed the registry's certificate",
        )
    warnings: list[str] = []
    if unknown:
        warnings.append(
            f"{file}: ignoring unknown field(s) {', '.join(repr(u) for u in unknown)} "
            f"(known fields: {', '.join(KNOWN_FIELDS)})"
        )
    known = {k: value[k] for k in KNOWN_FIELDS if k in value}
    return AppSpec(
        id=file,
        reference=reference,
        address=address,
        state_dir=_parse_state_dir(value.get("state_dir"), file),
        insecure=insecure,
        ca_bundle=ca_bundle,
        variables=_parse_variables(value.get("variables", {}), file),
        limits=_parse_limits(value.get("limits", {}), file),
        tls=_parse_tls(value.get("tls"), file),
        runtime_config=_parse_runtime_config(value.get("runtime_config"), file),
        warnings=tuple(warnings),
        content_hash=content_hash(known),
    )


def _parse_reference(reference: Any, file: str, unknown: list[str]) -> str:
    if reference is None:
        raise SpecError(
            "is required", file=file, field="reference",
            hint=_did_you_mean("reference", unknown)
            or "an OCI reference like \"ghcr.io/acme/shop:v3\" or a path to an OCI image layout directory",
        )
    if not isinstance(reference, str) or not reference.strip() or reference != reference.strip():
        raise SpecError(
            f"must be a non-empty string without surrounding spaces, got {_short(reference)}",
            file=file, field="reference",
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in reference):  # NUL would fail every pull, forever
        raise SpecError(f"contains control characters: {_short(reference)}", file=file, field="reference",
                        hint="a reference is registry/repository:tag or a directory path")
    return reference


def _short(value: Any, limit: int = 200) -> str:
    """repr() of a value from the file, cut short: errors quote what was wrong, not megabytes of it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _did_you_mean(field_name: str, unknown: list[str]) -> str | None:
    close = difflib.get_close_matches(field_name, unknown, n=1, cutoff=0.7)
    return f"found '{close[0]}': did you mean '{field_name}'?" if close else None


def content_hash(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_app_file_name(name: str) -> bool:
    """Only visible *.json names are apps: editors' and kubelet's temp names start with '.'."""
    return name.endswith(".json") and not name.startswith(".") and len(name) > len(".json")
