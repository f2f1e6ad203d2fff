"""Executor selection from a component's exports (spin-spec §4.1)."""

from __future__ import annotations

import pytest

from tauon.errors import LoadError
from tauon.executors.select import (
    SPIN_INBOUND,
    WASI_HTTP_02,
    WASI_HTTP_03,
    WASI_HTTP_RC,
    handler_kind,
    select_command,
    select_handler,
)
from tauon.hostif.linker import split_name, supported_version


@pytest.mark.parametrize(("export", "kind"), [
    ("wasi:http/incoming-handler@0.2.0", WASI_HTTP_02),
    ("wasi:http/incoming-handler@0.2.6", WASI_HTTP_02),
    ("wasi:http/incoming-handler@0.2.0-rc-2023-10-18", WASI_HTTP_RC),
    ("wasi:http/incoming-handler@0.2.0-rc-2023-11-10", WASI_HTTP_RC),
    ("wasi:http/handler@0.3.0", "wasi-http-0.3"),
    ("fermyon:spin/inbound-http", "spin-inbound-http"),
    ("wasi:cli/run@0.2.0", None),
    ("wasi:http/incoming-handler@0.1.0", None),
])
def test_handler_kind(export: str, kind: str | None) -> None:
    assert handler_kind(export) == kind


def test_one_wasi_http_handler_is_selected() -> None:
    assert select_handler(["wasi:cli/run@0.2.0", "wasi:http/incoming-handler@0.2.3"], component_id="c") == (
        WASI_HTTP_02, "wasi:http/incoming-handler@0.2.3")


def test_no_handler_names_what_was_found_and_what_is_expected() -> None:
    with pytest.raises(LoadError) as info:
        select_handler(["wasi:cli/run@0.2.0"], component_id="web")
    text = str(info.value)
    assert "exports no HTTP handler (it exports: wasi:cli/run@0.2.0)" in text
    assert "fermyon:spin/inbound-http" in text and info.value.field == "components.web.source"


def test_several_handlers_are_refused() -> None:
    with pytest.raises(LoadError, match="multiple different handlers"):
        select_handler(["wasi:http/incoming-handler@0.2.0", "fermyon:spin/inbound-http"], component_id="c")


def test_wasip3_is_selected_for_the_p3_executor() -> None:
    """Whether the component's async parts are supported is the builder's check (on tauon's runtime)."""
    assert select_handler(["wasi:http/handler@0.3.0"], component_id="c") == (
        WASI_HTTP_03, "wasi:http/handler@0.3.0")
    assert select_handler(["wasi:http/handler@0.3.0-rc-2026-03-15"], component_id="c")[0] == WASI_HTTP_03


def test_spin_inbound_http_is_selected() -> None:
    assert select_handler(["fermyon:spin/inbound-http"], component_id="c") == (
        SPIN_INBOUND, "fermyon:spin/inbound-http")


def test_wagi_components_need_wasi_cli_run() -> None:
    assert select_command(["wasi:cli/run@0.2.12"], component_id="c") == "wasi:cli/run@0.2.12"
    with pytest.raises(LoadError) as info:
        select_command(["wasi:http/incoming-handler@0.2.0", "wasi:cli/run@0.3.0"], component_id="w")
    assert "exports no wasi:cli/run@0.2.x" in str(info.value)
    assert "wasi:cli/run@0.3.0" in str(info.value) and info.value.field == "components.w.source"


def test_linked_versions() -> None:
    assert split_name("wasi:io/streams@0.2.9") == ("wasi:io/streams", "0.2.9")
    assert split_name("tauon:fixture/missing") == ("tauon:fixture/missing", None)
    assert supported_version("0.2.12") and supported_version("0.2.0-rc-2023-11-10")
    assert not supported_version("0.3.0") and not supported_version(None)
