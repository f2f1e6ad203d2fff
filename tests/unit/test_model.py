"""The shared plain types in tauon.model: what the layers above rely on them for."""

from __future__ import annotations

import pickle

from tauon.app.lockedapp import ContentRef
from tauon.app.plan import ComponentPlan
from tauon.model.address import Address
from tauon.model.mount import Mount
from tauon.model.spinvalue import SpinValue


def test_a_plans_mounts_travel_to_worker_processes() -> None:
    # Plans reach worker processes pickled (workers/channel.py): the mount must survive the trip intact.
    plan = ComponentPlan(id="c", wasm_path="/w", wasm_digest="sha256:00",
                         mounts=(Mount("/cache/files/abc", "/"), Mount("/cache/files/def", "/static")))
    back = pickle.loads(pickle.dumps(plan))
    assert back == plan
    assert [(m.source, m.guest_path) for m in back.mounts] == [("/cache/files/abc", "/"),
                                                              ("/cache/files/def", "/static")]


def test_one_mount_type_holds_a_locked_source_and_a_host_path() -> None:
    locked = Mount[ContentRef](ContentRef(source="file:///cache/x", digest="sha256:11"), "/data")
    placed = Mount[str]("/cache/x", locked.guest_path)
    assert locked.source.source == "file:///cache/x"
    assert placed == Mount("/cache/x", "/data")
    assert len({placed, Mount("/cache/x", "/data")}) == 1  # frozen and hashable, as plan fields must be


def test_address_and_spin_value_are_plain_values() -> None:
    assert str(Address("::", 80)) == "[::]:80"
    assert Address("0.0.0.0", 8080).url() == "http://127.0.0.1:8080"
    assert pickle.loads(pickle.dumps(Address("::1", 3000))) == Address("::1", 3000)
    value = SpinValue("spin-path-info", "PATH_INFO", "/x")
    assert (value.header, value.wagi, value.value) == ("spin-path-info", "PATH_INFO", "/x")
