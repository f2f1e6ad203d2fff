"""OCI registry layer: pull Spin apps (and wasm packages) from registries or OCI layout directories
into a verified content-addressed cache. The supervisor calls `pull_app` from a worker thread."""

from tauon.registry.progress import ProgressSink
from tauon.registry.pull import PulledApp, pull_app
from tauon.registry.reference import Reference, parse_reference

__all__ = ["ProgressSink", "PulledApp", "Reference", "parse_reference", "pull_app"]
