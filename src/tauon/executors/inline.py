"""When a wasi:http guest may run on the event loop itself instead of a guest thread.

Handing a request to a guest thread and back costs a small guest more than the guest itself: a
thread wake-up, a loop wake-up, and a GIL hand-off at every host call while the loop serves other
connections (py-spy --gil on the 7 KB C fixture: a sixth of the process's Python time; running it on
the loop cut the CPU per request by a quarter). A guest may run on the loop only when that can never
stall the loop or be seen by anyone:

- it runs through wasmtime's component API, and it has made no call outside `LOOP_SAFE`
  (hostif/loopsafe.py: the wasi:http types, streams, clocks, random, environment, stdout/stderr)
  when the run ends: any other host call abandons the run before it does anything, so the run can be
  served again on a thread without anyone noticing. Its log lines are held until the run ends;
- its runs are measured fast. Its first `WARMUP` runs go to threads; unless they took over
  `SLOW_HINT` each, its next `WARMUP` runs go to the loop, each measured, and from then on the
  average CPU time of its runs on the loop must stay under `FAST_RUN`. Only runs on the loop count:
  a run on a thread takes the GIL back at every host call and reads dearer than the same run on the
  loop (the C fixture, 0.3-0.45 ms a run on the loop on a slower machine, read ~1 ms on threads,
  over the limit, and stayed there for good while only threads were measured). A guest over the
  limit is run on the loop once in `PROBE_EVERY` requests, measured, so it comes back when it is
  fast again;
- the request has no body (nothing to wait for from the client);
- the run is abandoned, and the request served again from the start on a guest thread, as soon as a
  host call would have to wait (a full response pipe, a timer, poll), the guest calls outside
  `LOOP_SAFE`, or it computes past its deadline (`INLINE_TICKS`: 20-30 ms, counted in the CPU time
  the run gets). Nothing has been sent by then: the loop sends only after the run. The component
  then runs on threads for the next `BACKOFF` requests.

A run on the loop frees its store before its response is sent (on a thread, the response goes out
while the store is freed): sending first and freeing after served the JS fixture 12 % fewer
requests/s at 64 connections (557-598 against 661-678, two wrk runs of each, one form after the
other).
"""

from __future__ import annotations

from tauon.hostif.state import WouldBlock

FAST_RUN = 0.005
"""Average CPU seconds per run under which a component's guests run on the event loop: a run holds
the loop for about this long. On threads, each host call takes the GIL back from the loop: the JS
fixture cost 3.35 ms of CPU a request there against 2.46 ms on the loop, and served 1.5x the
requests at 64 connections (bench/bench_components.py)."""
WARMUP = 8
"""Runs measured on threads before the first run on the loop, and runs on the loop measured before
the loop's average decides."""
SLOW_HINT = 0.02
"""Average CPU seconds of the warm-up runs on threads over which the guest is not tried on the loop
(only probed): its runs would be abandoned there anyway (the latest `INLINE_TICKS` deadline)."""
INLINE_TICKS = 2
"""Epoch deadline of a run on the loop: after one whole tick (10 ms) its CPU time starts to count
(wasm/component/host.py `cpu_deadline`): it is abandoned at a later tick if it had the CPU for half
the time since, so a run that computes is abandoned 20-30 ms after it started."""
INLINE_WALL = 0.1
"""Seconds past its first deadline after which a run on the loop is abandoned however little CPU it
got (a machine so busy that its loop thread hardly runs)."""
BACKOFF = 1000
"""Requests served on threads after a run on the loop was abandoned."""
SAMPLE_EVERY = 8
"""Runs on the loop per run whose CPU time is measured."""
PROBE_EVERY = 64
"""Requests per probe (a measured run on the loop) while a guest's average is over `FAST_RUN`."""


class InlinePolicy:
    """One executor's decision, per request, whether its guest runs on the loop (no lock: a lost
    update between threads only makes the average a little staler)."""

    __slots__ = ("average", "backoff", "eligible", "loop_runs", "runs", "since_probe", "skipped")

    def __init__(self, eligible: bool) -> None:
        self.eligible = eligible
        self.runs = 0
        """Runs measured on threads (the warm-up)."""
        self.loop_runs = 0
        """Runs measured on the loop."""
        self.average = 0.0
        """CPU seconds per run: of the warm-up on threads until the first run on the loop is measured,
        then of the runs on the loop."""
        self.backoff = 0
        self.skipped = 0
        self.since_probe = 0

    def measures(self, inline: bool) -> bool:
        """Whether to measure this run: on a thread, only while warming up; on the loop, one run in
        `SAMPLE_EVERY` (a thread's CPU clock is a system call, which cost 7 % of a small request
        measured every time), and every probe."""
        if not inline:
            return self.eligible and self.runs < WARMUP
        self.skipped += 1
        if self.skipped < SAMPLE_EVERY and self.average < FAST_RUN and self.loop_runs >= WARMUP:
            return False
        self.skipped = 0
        return True

    def wanted(self) -> bool:
        if not self.eligible or self.runs < WARMUP:
            return False
        if self.backoff:
            self.backoff -= 1
            return False
        if self.loop_runs < WARMUP and self.average < SLOW_HINT:
            return True  # the loop's own warm-up, every run measured
        if self.average < FAST_RUN:
            return True
        self.since_probe += 1
        if self.since_probe < PROBE_EVERY:
            return False
        self.since_probe = 0
        return True  # a probe

    def record(self, cpu: float, *, inline: bool) -> None:
        """A measured run took `cpu` seconds of its thread's CPU time (`inline`: on the loop). The
        first run on the loop replaces the threads' estimate."""
        if inline:
            self.loop_runs += 1
            count = self.loop_runs
        else:
            self.runs += 1
            count = self.runs
        weight = 0.1 if count > WARMUP else 1 / count
        self.average += (cpu - self.average) * weight

    def abandoned(self) -> None:
        self.backoff = BACKOFF


__all__ = ["BACKOFF", "FAST_RUN", "INLINE_TICKS", "INLINE_WALL", "PROBE_EVERY", "SAMPLE_EVERY",
           "SLOW_HINT", "WARMUP", "InlinePolicy", "WouldBlock"]
