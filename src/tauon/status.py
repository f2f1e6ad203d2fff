"""What /status and /readyz say, and how `tauon status` prints it.

Per app file: reference, resolved digest, address, state, generation, last error and since when, plus
files that cannot be served as they stand (bad JSON, address clashes). Variables are listed by name only:
their values may be secrets.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from tauon.control.supervisor import Supervisor
from tauon.metrics import Metrics
from tauon.model.address import Address


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def app_rows(supervisor: Supervisor) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    remote = supervisor.workers.request_stats() if supervisor.workers is not None else {}
    for app_id, slot in supervisor.slots.items():
        gen = slot.generation
        spec = slot.spec
        rows.append({
            "app": app_id,
            "reference": spec.reference,
            "digest": gen.plan.digest if gen is not None else None,
            "address": str(spec.address) if spec.address is not None else None,
            "state": slot.state,
            "generation": gen.number if gen is not None else None,
            "tier": gen.plan.tier if gen is not None else None,
            "error": slot.error,
            "problem": supervisor.problems.get(app_id) or slot.tls_problem,
            "since": rfc3339(slot.since),
            "state_dir": spec.state_dir,
            "variables": sorted(spec.variables),
            "in_flight": (slot.site.switchboard.stats.inflight if slot.site.switchboard is not None else 0)
            + sum(stats.inflight for stats in remote.get(app_id, ())),  # workers: as of their last report
            "triggers": _triggers(slot.site.redis.describe()) if slot.site.redis is not None else [],
        })
    for app_id, problem in supervisor.problems.items():
        if app_id in supervisor.slots:
            continue  # the last good version serves; its row carries the problem
        rows.append({
            "app": app_id, "reference": None, "digest": None, "address": None, "state": "invalid",
            "generation": None, "tier": None, "error": problem, "problem": problem,
            "since": rfc3339(supervisor.problem_since.get(app_id, 0.0)), "state_dir": None,
            "variables": [], "in_flight": 0, "triggers": [],
        })
    rows.sort(key=lambda row: row["app"])
    return rows


def _triggers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "since": rfc3339(row["since"])} for row in rows]


def process_rows(supervisor: Supervisor, metrics: Metrics) -> list[dict[str, Any]]:
    """The serving processes: this one (worker 0) and, with --workers, the others."""
    served, serving = metrics.local_requests()
    rows: list[dict[str, Any]] = [{"worker": 0, "pid": os.getpid(), "requests": served, "in_flight": serving}]
    if supervisor.workers is not None:
        rows[0]["connections"] = supervisor.workers.connections(0)
        rows += supervisor.workers.describe()
    return rows


def pending_apps(supervisor: Supervisor) -> list[dict[str, str]]:
    """Apps whose first attempt has neither served nor failed yet."""
    return [{"app": app_id, "state": slot.state} for app_id, slot in sorted(supervisor.slots.items())
            if not slot.settled.is_set()]


def readiness(supervisor: Supervisor, *, scanned: bool, stopping: bool,
              grace: float = float("inf")) -> tuple[bool, dict[str, Any]]:
    """Ready once the initial scan is done and every app has served or failed; an app still in its
    first pull or compile holds readiness back only for `grace` seconds after it appeared, then it is
    listed as pending (one stuck app must not hold the host)."""
    if stopping:
        return False, {"ready": False, "reason": "stopping"}
    if not scanned:
        return False, {"ready": False, "reason": "the initial scan has not finished", "pending": []}
    pending = pending_apps(supervisor)
    now = time.monotonic()
    holding = [p for p in pending if now - supervisor.slots[p["app"]].added < grace]
    if holding:
        return False, {"ready": False, "reason": f"{len(holding)} app(s) still starting", "pending": holding}
    body: dict[str, Any] = {"ready": True, "apps": supervisor.counts()}
    if pending:
        body["pending"] = pending
    return True, body


def summary(counts: dict[str, int]) -> str:
    """One line for systemd's STATUS=: "pulling 2 app(s)…" while starting, then the steady state."""
    busy = counts.get("pending", 0) + counts.get("pulling", 0) + counts.get("starting", 0)
    serving = counts.get("running", 0)
    failing = counts.get("failed", 0) + counts.get("invalid", 0)
    steady = f"{serving} app(s) serving, {failing} failing"
    if busy:
        return f"pulling {busy} app(s)…; {steady}"
    return steady


# -- the `tauon status` client -------------------------------------------------------------------


def fetch_status(address: Address, *, timeout: float = 5.0) -> dict[str, Any]:
    url = f"{address.url()}/status"
    try:
        # No proxies: the admin address is local, and $http_proxy must not swallow it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=timeout) as response:
            doc: dict[str, Any] = json.loads(response.read())
            return doc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"cannot reach tauon's admin endpoint at {url}: {reason}") from None


def format_table(doc: dict[str, Any]) -> str:
    """Human-readable columns, then one line per error (errors are long; they don't fit a column)."""
    header = ("APP", "STATE", "GEN", "ADDRESS", "DIGEST", "SINCE", "REFERENCE")
    rows = [header]
    for app in doc.get("apps", []):
        digest = app.get("digest") or "-"
        rows.append((
            app["app"], app["state"] + ("*" if app.get("problem") and app["state"] != "invalid" else ""),
            str(app["generation"]) if app.get("generation") is not None else "-",
            app.get("address") or "-", digest[:19], app.get("since") or "-", app.get("reference") or "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    ready = "ready" if doc.get("ready") else "not ready"
    lines.insert(0, f"tauon {doc.get('version', '')} ({doc.get('mode', '?')}: {doc.get('source', '?')}), "
                    f"{ready}")
    processes = doc.get("processes") or []
    if len(processes) > 1:
        lines.insert(1, "processes: " + ", ".join(
            f"{p['worker']}: pid {p['pid']}, {p['requests']} requests"
            + (f", {p['connections']} connections" if "connections" in p else "") for p in processes))
    notes = []
    for app in doc.get("apps", []):
        if app.get("error"):
            notes.append(f"  {_named(app['app'], app['error'])}")
        if app.get("problem") and app.get("problem") != app.get("error"):
            notes.append(f"  {_named(app['app'], app['problem'])} (the last good version serves)")
    triggers = [f"  {app['app']}: {t['type']} {t['address']} {t['state']} since {t['since']}, channels "
                f"{', '.join(t['channels']) or '-'}" + (f" (last error: {t['last_error']})"
                                                        if t.get("last_error") else "")
                for app in doc.get("apps", []) for t in app.get("triggers") or []]
    if triggers:
        lines += ["", "triggers:", *triggers]
    if notes:
        lines += ["", "errors:", *notes]
    return "\n".join(lines)


def _named(app_id: str, text: str) -> str:
    # Errors usually start with the app file's name already.
    return text if text.startswith(app_id) else f"{app_id}: {text}"
