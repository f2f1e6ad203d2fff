"""The worker processes' request metrics, as the daemon sums them into /metrics and /status.

Each worker reports its own counters once a second (a `Stats` message); the daemon keeps every live
worker's last report and adds in what exited workers had served, so counters never go backwards.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from tauon.metrics import Metrics, RequestStats
from tauon.workers.messages import Stats, StatsSnapshot


def snapshot(metrics: Metrics, capacity: tuple[int, int, int]) -> Stats:
    """A worker's report: its request stats per app, and its guest capacity."""
    apps = {app_id: (dict(stats.requests), list(stats.buckets), stats.total_seconds, stats.inflight)
            for app_id, stats in metrics.request_items()}
    return Stats(apps=apps, capacity=capacity)


def _stats(snapshot: StatsSnapshot) -> RequestStats:
    stats = RequestStats()
    stats.requests, stats.buckets, stats.total_seconds, stats.inflight = snapshot
    return stats


class RemoteStats:
    def __init__(self) -> None:
        self.live: dict[int, dict[str, RequestStats]] = {}
        """Each live worker's last report, by worker index."""
        self.capacities: dict[int, tuple[int, int, int]] = {}
        self.retired: dict[str, RequestStats] = {}
        """Request counts of workers that have exited (counters must not go backwards)."""

    def report(self, worker: int, stats: Stats) -> None:
        self.live[worker] = {app_id: _stats(s) for app_id, s in stats.apps.items()}
        self.capacities[worker] = stats.capacity

    def fold(self, worker: int, serving: Container[str]) -> None:
        """Worker `worker` has exited: keep what it served of the apps still `serving`."""
        for app_id, stats in self.live.pop(worker, {}).items():
            if app_id in serving:
                stats.inflight = 0
                self.retired[app_id] = RequestStats.combined([self.retired.get(app_id), stats])
        self.capacities.pop(worker, None)

    def forget(self, app_id: str) -> None:
        self.retired.pop(app_id, None)
        for stats in self.live.values():
            stats.pop(app_id, None)

    def of(self, worker: int) -> dict[str, RequestStats]:
        return self.live.get(worker, {})

    def merged(self, serving: Container[str]) -> Mapping[str, list[RequestStats]]:
        """Every worker's stats of each app still `serving`, by app (exited workers' included)."""
        merged: dict[str, list[RequestStats]] = {}
        for app_id, stats in self.retired.items():
            merged.setdefault(app_id, []).append(stats)
        for worker_stats in self.live.values():
            for app_id, stats in worker_stats.items():
                if app_id in serving:
                    merged.setdefault(app_id, []).append(stats)
        return merged

    def capacity(self) -> tuple[int, int, int]:
        """The live workers' guest capacity, summed (as of their last reports)."""
        totals = list(self.capacities.values())
        return (sum(t[0] for t in totals), sum(t[1] for t in totals), sum(t[2] for t in totals))
