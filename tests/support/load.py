"""Load for the "zero failures while it changes" tests: client threads sending GETs in a loop, until the
block ends, counting each answer's outcome.

Outcomes are strings chosen by the test (`outcome(response)`; by default the status code), so a test
asserts on exactly what it cares about: only "200", or the two bodies before and after a swap. A
transport error is always counted as "error <url>: <ExceptionName>: <message>", which no test expects.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence

import httpx


def status(response: httpx.Response) -> str:
    return str(response.status_code)


class Load:
    """`clients` threads each sending GETs to `urls` in turn (client i starts at `urls[i % len(urls)]`)
    while the `with` block runs. `results` counts outcomes (read it under `lock` while the load runs)."""

    def __init__(self, urls: str | Sequence[str], *, clients: int = 4, timeout: float = 30.0,
                 outcome: Callable[[httpx.Response], str] = status) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.results: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._outcome = outcome
        self._timeout = timeout
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def total(self) -> int:
        with self.lock:
            return sum(self.results.values())

    def count(self, outcome: str) -> int:
        with self.lock:
            return self.results[outcome]

    def unexpected(self, *expected: str) -> dict[str, int]:
        """The outcomes other than `expected`, with their counts (what a test asserts is empty)."""
        with self.lock:
            return {k: v for k, v in self.results.items() if k not in expected}

    def _run(self, offset: int) -> None:
        with httpx.Client(timeout=self._timeout) as client:
            i = offset
            while not self._stop.is_set():
                url = self.urls[i % len(self.urls)]
                i += 1
                try:
                    seen = self._outcome(client.get(url))
                except httpx.HTTPError as exc:
                    seen = f"error {url}: {type(exc).__name__}: {exc}"
                with self.lock:
                    self.results[seen] += 1
