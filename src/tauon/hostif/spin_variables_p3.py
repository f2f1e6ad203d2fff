"""Spin 4's spin:variables/variables@3.0.0: `get: async func(name) -> result<string, error>`, the v2
function made component-model async (crates/factor-variables/src/host.rs): the same name validation,
resolution order (the app file's `variables`, `SPIN_VARIABLE_*`, defaults) and error variants, and
the value never logged. It completes when called, resolving as the v2 function does.
"""

from __future__ import annotations

from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_variables import variables_get

INTERFACES = [HostInterface("spin:variables/variables@3.0.0", {"get": variables_get})]
