"""The compile cache's garbage collection: which entries go (pure selection), how entries are found on
disk, and that collecting removes only what was chosen, artifact and sidecar together."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tauon.registry.gc import GRACE, collect, usage
from tauon.registry.gccompiled import Entry, scan, select

NOW = 1_000_000.0
CUTOFF = NOW - GRACE


def entry(name: str, size: int, age: float, *, partial: bool = False) -> Entry:
    return Entry(name, size, NOW - age, partial)


def names(entries: list[Entry]) -> list[str]:
    return [e.name for e in entries]


def test_unkept_entries_unused_for_the_grace_period_go_and_the_rest_stay_within_the_bound() -> None:
    entries = [entry("modules/old.cwasm", 10, 2 * GRACE), entry("modules/held-old.cwasm", 10, 2 * GRACE),
               entry("components/recent.cwasm", 10, 60)]
    chosen = select(entries, {"modules/held-old.cwasm"}, cutoff=CUTOFF, over=0)
    assert names(chosen) == ["modules/old.cwasm"]


def test_over_the_bound_the_least_recently_used_unkept_entries_go_first_until_it_fits() -> None:
    entries = [entry("components/a.cwasm", 100, 300), entry("components/b.cwasm", 100, 100),
               entry("components/c.cwasm", 100, 200), entry("components/held.cwasm", 1000, 900),
               entry("converted/d.wasm", 100, 50)]
    chosen = select(entries, {"components/held.cwasm"}, cutoff=CUTOFF, over=150)
    assert names(chosen) == ["components/a.cwasm", "components/c.cwasm"]  # oldest first: 300 s, 200 s


def test_old_entries_count_towards_the_excess_before_recent_ones_are_evicted() -> None:
    entries = [entry("modules/old.cwasm", 500, 2 * GRACE), entry("modules/recent.cwasm", 100, 10)]
    assert names(select(entries, set(), cutoff=CUTOFF, over=400)) == ["modules/old.cwasm"]
    assert names(select(entries, set(), cutoff=CUTOFF, over=600)) == ["modules/old.cwasm",
                                                                       "modules/recent.cwasm"]


def test_held_entries_are_never_chosen_even_far_over_the_bound() -> None:
    held = [entry(f"components/{i}.cwasm", 100, 10 * GRACE) for i in range(3)]
    assert select(held, {e.name for e in held}, cutoff=CUTOFF, over=10**9) == []


def test_a_partial_entry_goes_only_by_age_since_it_may_be_a_write_in_progress() -> None:
    writing = entry("components/.x.cwasm.1234.tmp", 10**6, 5, partial=True)
    stale = entry("modules/.y.cwasm.5678.tmp", 10, 2 * GRACE, partial=True)
    assert names(select([writing, stale], set(), cutoff=CUTOFF, over=10**9)) == [stale.name]


def write(path: Path, data: bytes, age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test_scan_pairs_artifacts_with_their_sidecars_and_marks_the_incomplete(tmp_path: Path) -> None:
    compiled = tmp_path / "compiled"
    write(compiled / "modules" / "m.cwasm", b"x" * 100)
    write(compiled / "modules" / "m.cwasm.sha256", b"h" * 65)
    write(compiled / "components" / "c.cwasm", b"x" * 10)  # its checksum not written yet
    write(compiled / "converted" / "k.wasm", b"w" * 7)
    write(compiled / "converted" / "k.wasm.digest", b"d" * 72)
    write(compiled / "converted" / "gone.wasm.digest", b"d" * 72)  # its artifact removed
    write(compiled / "modules" / ".n.cwasm.abc.tmp", b"t" * 3)
    found = {e.name: e for e in scan(compiled)}
    assert set(found) == {"modules/m.cwasm", "components/c.cwasm", "converted/k.wasm",
                          "converted/gone.wasm.digest", "modules/.n.cwasm.abc.tmp"}
    assert found["modules/m.cwasm"].size == 165 and not found["modules/m.cwasm"].partial
    assert found["converted/k.wasm"].size == 79 and not found["converted/k.wasm"].partial
    assert all(found[n].partial for n in ("components/c.cwasm", "converted/gone.wasm.digest",
                                          "modules/.n.cwasm.abc.tmp"))


def test_collect_removes_what_no_generation_holds_and_counts_compiled_code_in_usage(tmp_path: Path) -> None:
    compiled = tmp_path / "compiled"
    held = write(compiled / "components" / "held.cwasm", b"x" * 1000, age=2 * GRACE)
    write(compiled / "components" / "held.cwasm.sha256", b"h" * 65)
    old = write(compiled / "modules" / "old.cwasm", b"x" * 2000, age=2 * GRACE)
    old_sum = write(compiled / "modules" / "old.cwasm.sha256", b"h" * 65)
    lru = write(compiled / "converted" / "lru.wasm", b"x" * 3000, age=600)
    write(compiled / "converted" / "lru.wasm.digest", b"d" * 72)
    mru = write(compiled / "converted" / "mru.wasm", b"x" * 3000, age=60)
    write(compiled / "converted" / "mru.wasm.digest", b"d" * 72)
    total = usage(tmp_path)
    assert total == 1000 + 65 + 2000 + 65 + 2 * (3000 + 72)
    # the bound leaves room for 'held' and one converted entry: 'old' by age, then 'lru' by recency
    result = collect(tmp_path, set(), set(), keep_compiled={"components/held.cwasm"}, max_bytes=4200)
    assert held.exists() and mru.exists()
    assert not old.exists() and not old_sum.exists() and not lru.exists()
    assert not (compiled / "converted" / "lru.wasm.digest").exists()
    assert result.files == 2 and result.bytes == 2065 + 3072
    assert usage(tmp_path) == total - result.bytes


def test_collect_without_keep_compiled_leaves_compiled_code_alone(tmp_path: Path) -> None:
    old = write(tmp_path / "compiled" / "modules" / "old.cwasm", b"x" * 10, age=2 * GRACE)
    assert collect(tmp_path, set(), set(), max_bytes=0).files == 0
    assert old.exists()


def test_a_hold_keeps_names_until_its_last_holder_releases_and_marks_them_used(tmp_path: Path) -> None:
    from tauon.wasm import cacheuse

    artifact = write(tmp_path / "components" / "shared.cwasm", b"x", age=2 * GRACE)
    first = cacheuse.Hold(tmp_path, {"components/shared.cwasm", "modules/a.cwasm"})
    second = cacheuse.Hold(tmp_path, {"components/shared.cwasm"})
    assert {"components/shared.cwasm", "modules/a.cwasm"} <= cacheuse.held()
    first.release()
    first.release()  # idempotent: the other holder's count is untouched
    assert "components/shared.cwasm" in cacheuse.held() and "modules/a.cwasm" not in cacheuse.held()
    second.release()
    assert "components/shared.cwasm" not in cacheuse.held()
    assert time.time() - artifact.stat().st_mtime < 60  # its grace period runs from the release
