"""A component's outbound allow-list, rendered when its executor is built (the one rule and wording for
every executor: HTTP components, Spin 1.x modules, Redis handlers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tauon.app.allowed_hosts import AllowedHosts, parse_allowed_hosts
from tauon.app.plan import ComponentPlan
from tauon.errors import LoadError
from tauon.services.variables import VariableError


def allowed_hosts_of(component: ComponentPlan, *, component_ids: Sequence[str] = (),
                     resolve: Callable[[str], str] | None = None) -> AllowedHosts:
    """`component.metadata.allowed_outbound_hosts` (legacy `allowed_http_hosts` already converted by the
    loader) parsed; `component_ids`: the app's components ('*.spin.internal' stands for them);
    `resolve` renders `{{ variable }}` templates in entries. Raises LoadError naming the component."""
    field = f"components.{component.id}.metadata.allowed_outbound_hosts"
    try:
        return parse_allowed_hosts(list(component.metadata.allowed_outbound_hosts),
                                   component_ids=component_ids, resolve=resolve)
    except VariableError as exc:
        raise LoadError(f"component '{component.id}': allowed_outbound_hosts cannot be resolved: {exc}",
                        field=field,
                        hint="set the variable in the app file's 'variables' or as SPIN_VARIABLE_<NAME>",
                        ) from None
    except LoadError as exc:
        exc.field = exc.field or field
        raise
