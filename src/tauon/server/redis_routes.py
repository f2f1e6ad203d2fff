"""A generation's Redis side: which channels on which servers go to which components' handlers.

Built with the generation (its handlers share the generation's key-value stores, databases and
concurrency limiter with its HTTP executors). Addresses and channels are `{{ variable }}` templates
rendered here, as Spin's trigger does before it subscribes; several triggers on one channel all run
for each message (Spin: `server -> channel -> [components]`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tauon.app.expressions import TemplateError, render_template
from tauon.app.plan import GenerationPlan
from tauon.app.redis_triggers import check_redis_url, redact_url
from tauon.errors import LoadError
from tauon.executors import BuildContext, build
from tauon.executors.redis_component import RedisHandler
from tauon.services import AppServices
from tauon.services.variables import VariableError

Subscriptions = dict[str, dict[str, tuple[str, ...]]]
"""Redis URL -> channel -> component ids, in trigger order."""


@dataclass(eq=False)
class RedisRoutes:
    subscriptions: Subscriptions
    handlers: dict[str, RedisHandler]
    """By component id."""

    def close(self) -> None:
        for handler in self.handlers.values():
            handler.close()


def _render(template: str, what: str, trigger_id: str, resolve: Callable[[str], str]) -> str:
    try:
        return render_template(template, resolve)
    except (TemplateError, VariableError) as exc:
        raise LoadError(f"Redis trigger '{trigger_id}': failed to resolve the {what} {template!r}: {exc}",
                        hint="set the variable in the app file's 'variables' or as SPIN_VARIABLE_<NAME>",
                        ) from None


def resolve_subscriptions(plan: GenerationPlan, resolve: Callable[[str], str]) -> Subscriptions:
    """Render every trigger's address and channel. Raises LoadError naming the trigger."""
    subs: Subscriptions = {}
    for trigger in plan.redis_triggers:
        address = _render(trigger.address, "address", trigger.id, resolve)
        problem = check_redis_url(address)
        if problem is not None:
            shown = redact_url(address) if address else "(none)"
            raise LoadError(
                f"Redis trigger '{trigger.id}' (component '{trigger.component}'): address {shown}: {problem}",
                field="metadata.triggers.redis.address",
                hint="set [application.trigger.redis] address (or the trigger's own address) to a URL "
                     "like redis://host:6379")
        channel = _render(trigger.channel, "channel", trigger.id, resolve)
        channels = subs.setdefault(address, {})
        channels[channel] = (*channels.get(channel, ()), trigger.component)
    return subs


def build_redis_routes(plan: GenerationPlan, context: BuildContext, services: AppServices) -> RedisRoutes:
    """Worker thread: resolve the subscriptions and build one handler per component."""
    subs = resolve_subscriptions(plan, services.resolver.resolve)
    handlers: dict[str, RedisHandler] = {}
    try:
        for trigger in plan.redis_triggers:
            if trigger.component in handlers:
                continue
            handlers[trigger.component] = build(plan, trigger, context)
    except BaseException:
        for handler in handlers.values():
            handler.close()
        raise
    return RedisRoutes(subs, handlers)
