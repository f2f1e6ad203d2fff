"""Prometheus metrics in tauon's own CollectorRegistry (never the process-global one).

Request metrics sit on the hot path, so they are plain integers and floats that the switchboard bumps
on the event loop thread (no locks, no label look-ups); a custom collector turns them into Prometheus
families only when /metrics is scraped, on the same thread. Supervisor events are rare and use
prometheus-client's ordinary Counter and Histogram.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# *_created series double the output and no dashboard uses them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PULL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
COMPILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
APP_STATES = ("pending", "pulling", "starting", "running", "failed", "invalid")


class RequestStats:
    """One app's request counters. Mutated only on the event loop thread."""

    __slots__ = ("buckets", "inflight", "requests", "total_seconds")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        """(component, status) -> count; status 0: the client went away before a response started."""
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        """Non-cumulative counts per latency bucket; the last one is +Inf."""
        self.total_seconds = 0.0
        self.inflight = 0

    @classmethod
    def combined(cls, parts: Iterable[RequestStats | None]) -> RequestStats:
        """The sum of several processes' stats for one app (--workers)."""
        total = cls()
        for part in parts:
            if part is None:
                continue
            for key, count in part.requests.items():
                total.requests[key] = total.requests.get(key, 0) + count
            total.buckets = [a + b for a, b in zip(total.buckets, part.buckets, strict=True)]
            total.total_seconds += part.total_seconds
            total.inflight += part.inflight
        return total

    def observe(self, component: str, status: int, seconds: float) -> None:
        key = (component, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total_seconds += seconds


def status_labels(status: int) -> tuple[str, str]:
    """(code, class) label values: "404", "4xx"; "none" when no response was sent."""
    if status <= 0:
        return "none", "none"
    return str(status), f"{status // 100}xx"


class ByteCounter:
    """A pull progress sink that remembers how many bytes were actually downloaded (not cached).
    `on_download`: called once, from the pull's thread, if its first report shows bytes to download."""

    def __init__(self, inner: Callable[[int, int, int, int], None] | None = None, *,
                 on_download: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.on_download = on_download
        self.first: int | None = None
        self.last = 0

    def __call__(self, done_bytes: int, total_bytes: int, layers_done: int, layers_total: int) -> None:
        if self.first is None:
            self.first = done_bytes  # the first report counts what the cache already held
            if done_bytes < total_bytes and self.on_download is not None:
                self.on_download()
        self.last = done_bytes
        if self.inner is not None:
            self.inner(done_bytes, total_bytes, layers_done, layers_total)

    @property
    def downloaded(self) -> int:
        return max(0, self.last - (self.first or 0))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests: dict[str, RequestStats] = {}
        self.app_states: Callable[[], Mapping[str, int]] = dict
        """Set by the daemon: current number of apps in each state."""
        self.app_tiers: Callable[[], Mapping[str, str]] = dict
        """Set by the daemon: the compiler tier ('winch', 'cranelift') of each app's serving code."""
        self.guest_capacity: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)
        """Set by the daemon: (guests holding a run slot, run slots, instance pool size; 0: no pool)."""
        self.remote_requests: Callable[[], Mapping[str, list[RequestStats]]] = dict
        """Set by the daemon with --workers: the worker processes' request stats, by app."""
        reg = self.registry
        self.pulls = Counter("tauon_pulls", "Pulls (tag resolutions and downloads), by app",
                             ["app"], registry=reg)
        self.pull_failures = Counter("tauon_pull_failures", "Pulls that failed, by app", ["app"],
                                     registry=reg)
        self.pull_bytes = Counter("tauon_pull_bytes", "Bytes downloaded from registries (cache hits "
                                  "excluded), by app", ["app"], registry=reg)
        self.pull_duration = Histogram("tauon_pull_duration_seconds", "Time to pull an app, by app",
                                       ["app"], buckets=PULL_BUCKETS, registry=reg)
        self.compile_duration = Histogram("tauon_compile_duration_seconds",
                                          "Time to build a generation (compile every component), by app",
                                          ["app"], buckets=COMPILE_BUCKETS, registry=reg)
        self.swaps = Counter("tauon_generation_swaps", "Generations put into service, by app", ["app"],
                             registry=reg)
        self.app_failures = Counter("tauon_app_failures", "Failed attempts to start or update an app "
                                    "(pull, load, compile or bind), by app", ["app"], registry=reg)
        self.reloads = Counter("tauon_reloads", "Reloads requested with SIGHUP", registry=reg)
        self.worker_restarts = Counter("tauon_worker_restarts", "Worker processes restarted after "
                                       "they exited or stopped answering (--workers)", registry=reg)
        self.redis_messages = Counter("tauon_redis_messages", "Redis messages received by an app's "
                                      "subscriptions, by app and channel", ["app", "channel"], registry=reg)
        self.redis_handled = Counter("tauon_redis_messages_handled", "Redis messages a component handled "
                                     "without error, by app, channel and component",
                                     ["app", "channel", "component"], registry=reg)
        self.redis_failed = Counter("tauon_redis_messages_failed", "Redis messages whose handler trapped, "
                                    "timed out or returned an error, by app, channel and component",
                                    ["app", "channel", "component"], registry=reg)
        self._redis_labels: dict[str, set[tuple[str, ...]]] = {}
        """Label values used per app, so forget() can remove them."""
        reg.register(_HotPathCollector(self))

    def requests_for(self, app_id: str) -> RequestStats:
        stats = self._requests.get(app_id)
        if stats is None:
            stats = self._requests[app_id] = RequestStats()
        return stats

    def redis_received(self, app_id: str, channel: str) -> None:
        self.redis_messages.labels(app_id, channel).inc()
        self._redis_labels.setdefault(app_id, set()).add((channel,))

    def redis_done(self, app_id: str, channel: str, component: str, *, ok: bool) -> None:
        (self.redis_handled if ok else self.redis_failed).labels(app_id, channel, component).inc()
        self._redis_labels.setdefault(app_id, set()).add((channel, component))

    def forget(self, app_id: str) -> None:
        """An app file went away: drop its series so removed apps don't accumulate."""
        self._requests.pop(app_id, None)
        for labels in self._redis_labels.pop(app_id, set()):
            counters = (self.redis_messages,) if len(labels) == 1 else (self.redis_handled, self.redis_failed)
            for counter in counters:
                with contextlib.suppress(KeyError):
                    counter.remove(app_id, *labels)
        for metric in (self.pulls, self.pull_failures, self.pull_bytes, self.pull_duration,
                       self.compile_duration, self.swaps, self.app_failures):
            with contextlib.suppress(KeyError):
                metric.remove(app_id)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return prometheus_client.generate_latest(self.registry), prometheus_client.CONTENT_TYPE_LATEST

    def local_requests(self) -> tuple[int, int]:
        """(requests served, requests being served) by this process, for apps still present."""
        return (sum(sum(stats.requests.values()) for stats in self._requests.values()),
                sum(stats.inflight for stats in self._requests.values()))

    def request_items(self) -> Iterable[tuple[str, RequestStats]]:
        """Each app's request stats, summed over the daemon and its worker processes."""
        remote = self.remote_requests()
        if not remote:
            return list(self._requests.items())
        apps = dict.fromkeys([*self._requests, *remote])
        return [(app_id, RequestStats.combined([self._requests.get(app_id), *remote.get(app_id, ())]))
                for app_id in apps]


class _HotPathCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily("tauon_http_requests", "HTTP requests by app, component and status",
                                       labels=["app", "component", "code", "class"])
        latency = HistogramMetricFamily("tauon_http_request_duration_seconds",
                                        "Time from request to the end of the response, by app",
                                        labels=["app"])
        inflight = GaugeMetricFamily("tauon_http_requests_in_flight", "Requests being served, by app",
                                     labels=["app"])
        for app_id, stats in self.metrics.request_items():
            for (component, status), count in sorted(stats.requests.items()):
                requests.add_metric([app_id, component, *status_labels(status)], count)
            running = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), stats.buckets, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            latency.add_metric([app_id], buckets, stats.total_seconds)
            inflight.add_metric([app_id], stats.inflight)
        states = GaugeMetricFamily("tauon_apps", "App files by state", labels=["state"])
        counts = self.metrics.app_states()
        for state in (*APP_STATES, *sorted(set(counts) - set(APP_STATES))):
            states.add_metric([state], counts.get(state, 0))
        tiers = GaugeMetricFamily("tauon_app_tier", "1 for the compiler whose code an app serves "
                                  "(winch: baseline, until Cranelift's is swapped in)",
                                  labels=["app", "tier"])
        for app_id, tier in sorted(self.metrics.app_tiers().items()):
            tiers.add_metric([app_id, tier], 1)
        running_guests, slots, pool = self.metrics.guest_capacity()
        guests = GaugeMetricFamily("tauon_guests_running", "Guests executing wasm in a run slot "
                                   "(--running-guests; short guests and overflow run outside it)",
                                   value=running_guests)
        run_slots = GaugeMetricFamily("tauon_guest_run_slots", "Run slots (--running-guests)", value=slots)
        pool_size = GaugeMetricFamily("tauon_instance_pool_slots", "Instance pool size (--instance-pool; "
                                      "0: on-demand allocation); a full pool answers 503", value=pool)
        return [requests, latency, inflight, states, tiers, guests, run_slots, pool_size]
