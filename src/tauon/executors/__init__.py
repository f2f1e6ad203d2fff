"""Running guests: one executor per handler ABI, chosen and built for a trigger by `build`."""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

from tauon.executors.builder import build_executor
from tauon.executors.context import BuildContext

if TYPE_CHECKING:
    from tauon.app.plan import GenerationPlan, RedisTriggerPlan, TriggerPlan
    from tauon.executors.base import Executor
    from tauon.executors.redis_component import RedisHandler

__all__ = ["BuildContext", "build"]


@overload
def build(plan: GenerationPlan, trigger: TriggerPlan, context: BuildContext) -> Executor: ...
@overload
def build(plan: GenerationPlan, trigger: RedisTriggerPlan, context: BuildContext) -> RedisHandler: ...
def build(plan: GenerationPlan, trigger: TriggerPlan | RedisTriggerPlan,
          context: BuildContext) -> Executor | RedisHandler:
    """The executor (HTTP trigger) or handler (Redis trigger) for `trigger`'s component, whose wasm
    `plan` holds already prepared (wasm/prepare.py). Raises LoadError naming the component."""
    return build_executor(plan, trigger, context)
