"""Reading an OCI image-layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`).

Which manifest: `dir@sha256:...` picks that digest; `dir:tag` picks the index.json entry whose
`org.opencontainers.image.ref.name` annotation equals `tag`; a bare `dir` needs index.json to list
exactly one manifest. Blob bytes are verified by the caller exactly like registry blobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tauon.errors import PullError
from tauon.registry.artifact import Descriptor, descriptor, parse_json_object
from tauon.registry.reference import OCI_REF_NAME, LayoutRef, check_digest

CHUNK = 64 * 1024


class LayoutSource:
    def __init__(self, layout: LayoutRef) -> None:
        self.layout = layout
        self.name = layout.directory.name

    def describe(self) -> str:
        return f"OCI layout {self.layout.directory}"

    def select(self) -> Descriptor:
        """The descriptor of the manifest the layout reference names."""
        what = f"{self.layout.directory}/index.json"
        try:
            raw = (self.layout.directory / "index.json").read_bytes()
        except OSError as exc:
            raise PullError(f"cannot read {what}: {exc}") from exc
        entries = parse_json_object(raw, what).get("manifests")
        if not isinstance(entries, list):
            raise PullError(f"{what} has no 'manifests' list")
        descs: list[tuple[Descriptor, str | None]] = []
        for i, entry in enumerate(entries):
            annotations = entry.get("annotations") if isinstance(entry, dict) else None
            ref_name = annotations.get(OCI_REF_NAME) if isinstance(annotations, dict) else None
            descs.append((descriptor(entry, f"{what} manifests[{i}]"), ref_name))
        if self.layout.digest is not None:
            for desc, _ in descs:
                if desc.digest == self.layout.digest:
                    return desc
            raise PullError(f"{what} lists no manifest {self.layout.digest}")
        if self.layout.tag is not None:
            for desc, ref_name in descs:
                if ref_name == self.layout.tag:
                    return desc
            names = sorted(n for _, n in descs if n)
            raise PullError(f"{what} has no manifest tagged '{self.layout.tag}'",
                            hint=f"tags present: {', '.join(names) or 'none'}")
        if len(descs) != 1:
            names = sorted(n for _, n in descs if n)
            raise PullError(f"{what} lists {len(descs)} manifests; say which one",
                            hint=f"append ':<tag>' (one of: {', '.join(names) or 'none'}) or '@<digest>'")
        return descs[0][0]

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[Iterator[bytes]]:
        alg, hexpart = check_digest(digest, what=self.describe()).split(":", 1)
        path = self.layout.directory / "blobs" / alg / hexpart
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise PullError(f"{self.describe()} lacks blob {digest} ({exc.strerror})",
                            hint="the layout directory is incomplete; re-export it") from exc
        with handle:
            yield iter(lambda: handle.read(CHUNK), b"")
