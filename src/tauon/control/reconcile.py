"""Desired state (the directory) against what the supervisor holds -> actions. Pure: no I/O.

Rules an operator can predict:
- an app is identified by its file name; a change is a different normalized content hash;
- a file that fails to parse never stops what is running: the last good version keeps serving;
- two files claiming one address: the one that sorts first keeps it, whatever the order of events, so a
  restart reaches the same result; the other is reported, and starts when the winner goes away.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tauon.control.spec import AppSpec
from tauon.errors import SpecError


@dataclass(frozen=True, slots=True)
class Plan:
    start: tuple[AppSpec, ...] = ()
    update: tuple[AppSpec, ...] = ()
    stop: tuple[str, ...] = ()
    problems: dict[str, SpecError] = field(default_factory=dict)
    """Files that are not (or no longer) wanted as they stand, with the reason."""
    kept: tuple[str, ...] = ()
    """Apps whose file is currently bad but whose last good version keeps running."""

    @property
    def empty(self) -> bool:
        return not (self.start or self.update or self.stop)


def _port_clash(a: AppSpec, b: AppSpec) -> bool:
    # A wildcard host and a specific host on one port clash at bind time too.
    if a.address is None or b.address is None:
        return False  # Redis-only apps listen nowhere
    if a.address.port != b.address.port:
        return False
    wildcard = {"0.0.0.0", "::", ""}
    ha, hb = a.address.host.lower(), b.address.host.lower()
    return ha == hb or ha in wildcard or hb in wildcard


def reconcile(
    desired: dict[str, AppSpec | SpecError],
    held: dict[str, AppSpec],
) -> Plan:
    """`held` maps app id -> the spec the supervisor currently holds (running, starting or retrying)."""
    problems: dict[str, SpecError] = {}
    wanted: dict[str, AppSpec] = {}
    claims: list[AppSpec] = []
    kept: list[str] = []
    for app_id in sorted(desired):
        entry = desired[app_id]
        if isinstance(entry, SpecError):
            problems[app_id] = entry
            if app_id in held:
                # The last good version keeps running, and keeps its address.
                kept.append(app_id)
                claims.append(held[app_id])
            continue
        clash = next((c for c in claims if _port_clash(c, entry)), None)
        if clash is not None:
            problems[app_id] = SpecError(
                f"address {entry.address} is already claimed by {clash.id}",
                file=app_id,
                field="address",
                hint=f"{clash.id} sorts first and keeps it; change one address, "
                f"or remove {clash.id} and {app_id} will start",
            )
            continue
        wanted[app_id] = entry
        claims.append(entry)

    start = tuple(spec for app_id, spec in wanted.items() if app_id not in held)
    update = tuple(
        spec
        for app_id, spec in wanted.items()
        if app_id in held and held[app_id].content_hash != spec.content_hash
    )
    stop = tuple(app_id for app_id in sorted(held) if app_id not in wanted and app_id not in kept)
    return Plan(start=start, update=update, stop=stop, problems=problems, kept=tuple(kept))
