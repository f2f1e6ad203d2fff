"""Which host interface serves an import name: exact Spin/draft versions, unversioned v1, wasi 0.2.x
(0.3 in test_hostif_p3_sync.py)."""

from __future__ import annotations

from tauon.hostif.linker import ALL_INTERFACES, interface_for, merge

BY_NAME = merge(ALL_INTERFACES)


def served(import_name: str) -> str | None:
    iface = interface_for(BY_NAME, import_name)
    return iface.name if iface is not None else None


def test_spin_interfaces_match_their_exact_version_only() -> None:
    assert served("fermyon:spin/key-value@2.0.0") == "fermyon:spin/key-value@2.0.0"
    assert served("fermyon:spin/key-value") == "fermyon:spin/key-value"  # v1, unversioned
    assert served("fermyon:spin/config") == "fermyon:spin/config"
    assert served("spin:sqlite/sqlite@3.0.0") == "spin:sqlite/sqlite@3.0.0"
    assert served("spin:sqlite/sqlite@3.1.0") == "spin:sqlite/sqlite@3.1.0"
    assert served("spin:variables/variables@3.0.0") == "spin:variables/variables@3.0.0"
    assert served("spin:key-value/key-value@3.0.0") == "spin:key-value/key-value@3.0.0"
    assert served("spin:key-value/key-value@3.1.0") is None
    assert served("fermyon:spin/key-value@2.0.1") is None


def test_draft_wasi_interfaces_match_their_draft_version() -> None:
    assert served("wasi:keyvalue/store@0.2.0-draft2") == "wasi:keyvalue/store@0.2.0-draft2"
    assert served("wasi:keyvalue/atomics@0.2.0-draft2") == "wasi:keyvalue/atomics@0.2.0-draft2"
    assert served("wasi:config/store@0.2.0-draft-2024-09-27") == "wasi:config/store@0.2.0-draft-2024-09-27"
    assert served("wasi:keyvalue/store@0.2.0-draft") is None


def test_standard_wasi_keeps_the_0_2_rule() -> None:
    assert served("wasi:io/streams@0.2.9") == "wasi:io/streams"
    assert served("wasi:io/streams@0.2.0-rc-2023-11-10") == "wasi:io/streams"
    assert served("wasi:io/streams") is None
    assert served("wasi:io/streams@0.3.0") is None  # 0.3 has no wasi:io
