"""App variables and the component config keys a guest reads (spin-spec §2.3, §5.2). No wasm here.

Providers, first value wins: the app file's `variables` map (tauon's stand-in for `spin up --variable`),
then the runtime config's `[[variables_provider]]`s in order, then `SPIN_VARIABLE_<NAME UPPER>` in
tauon's environment, then the variable's default. Spin's implicit env provider also reads a `.env`
file in its working directory; a daemon has no meaningful cwd, so tauon does not (a configured `env`
provider's `dotenv_path` is read). Values are resolved once per generation, so a request never waits
on a provider.

Secret values must never reach a log line, an exception or a repr: only names appear in either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tauon.app.expressions import TemplateError, render_template, variable_name_error
from tauon.errors import LoadError

ENV_PREFIX = "SPIN_VARIABLE"


class VariableError(Exception):
    """A `variables.get` failure, as Spin's `fermyon:spin/variables` error variant (case in `kind`)."""

    kind = "other"


class InvalidName(VariableError):
    kind = "invalid-name"


class Undefined(VariableError):
    kind = "undefined"


class ProviderError(VariableError):
    kind = "provider"


def env_variable_name(name: str) -> str:
    """The environment variable Spin's env provider reads for app variable `name`."""
    return f"{ENV_PREFIX}_{name.upper()}"


class VariableResolver:
    """The resolved app variables of one generation. Thread-safe (immutable after construction)."""

    __slots__ = ("_missing", "_secret", "_values")

    def __init__(
        self,
        app_variables: Mapping[str, Mapping[str, Any]],
        provided: Mapping[str, str],
        env: Mapping[str, str],
        providers: Sequence[Callable[[str], str | None]] = (),
    ) -> None:
        """`app_variables`: name -> {"default": str | None, "secret": bool}; `provided`: the app file's
        values; `providers`: the runtime config's, in order (runtimeconfig/providers.py); `env`: the
        process environment (only SPIN_VARIABLE_* entries are looked at)."""
        self._values: dict[str, str] = {}
        self._missing: list[str] = []
        self._secret: frozenset[str] = frozenset(
            name for name, decl in app_variables.items() if decl.get("secret")
        )
        for name, decl in app_variables.items():
            value = provided.get(name)
            for provider in providers:
                if value is not None:
                    break
                value = provider(name)
            if value is None:
                value = env.get(env_variable_name(name))
            if value is None:
                default = decl.get("default")
                value = default if isinstance(default, str) else None
            if value is None:
                self._missing.append(name)
            else:
                self._values[name] = value

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._values) | frozenset(self._missing)

    def is_secret(self, name: str) -> bool:
        return name in self._secret

    def validate(self) -> None:
        """Load-time check: every required variable has a provider. Raises LoadError naming them."""
        if self._missing:
            names = ", ".join(repr(n) for n in sorted(self._missing))
            env_names = ", ".join(env_variable_name(n) for n in sorted(self._missing))
            raise LoadError(
                f"no provider resolved required variable(s): {names}",
                field="variables",
                hint=f"set them in the app file's 'variables' or in tauon's environment as {env_names}",
            )

    def resolve(self, name: str) -> str:
        """The value of app variable `name`. Raises ProviderError (unresolved) or InvalidName (unknown)."""
        value = self._values.get(name)
        if value is not None:
            return value
        if name in self._missing:
            raise ProviderError(f"no provider resolved required variable {name!r}")
        raise InvalidName(f"{name!r}: no such app variable")

    def __repr__(self) -> str:
        return (
            f"VariableResolver(resolved={sorted(self._values)}, missing={sorted(self._missing)}, "
            f"secret={sorted(self._secret)})"
        )


class ComponentVariables:
    """What one component's guest can read: its `config` keys, rendered over the app variables."""

    __slots__ = ("_component", "_config", "_resolver")

    def __init__(
        self, config_templates: Mapping[str, str], resolver: VariableResolver, *, component_id: str = ""
    ) -> None:
        self._config = dict(config_templates)
        self._resolver = resolver
        self._component = component_id

    def get(self, key: str) -> str:
        """Spin's `variables.get(key)`. Raises InvalidName, Undefined or ProviderError."""
        problem = variable_name_error(key)
        if problem is not None:
            raise InvalidName(f"{key!r}: {problem}")
        template = self._config.get(key)
        if template is None:
            raise Undefined(f"no variable for {self._component!r}.{key!r}")
        try:
            return render_template(template, self._resolver.resolve)
        except TemplateError as exc:  # templates are checked at load; only a bypassed loader gets here
            raise VariableError(f"invalid variable template for {key!r}: {exc}") from None

    def get_all(self) -> list[tuple[str, str]]:
        """Every config key with its value (wasi:config/store.get-all). Raises like `get`."""
        return [(key, self.get(key)) for key in sorted(self._config)]

    def keys(self) -> list[str]:
        return sorted(self._config)

    def __repr__(self) -> str:
        return f"ComponentVariables(component={self._component!r}, keys={sorted(self._config)})"
