"""`[llm_compute] type = "remote_http"` through the registry and the real tauon process, with the
spin-sdk 3.4.1 python-llm fixture calling fermyon:spin/llm@2.0.0.

The LLM server is a fake at the boundary tests cannot reach (a real model server): a loopback HTTP
server in the test process speaking exactly the documented APIs Spin's crates/llm-remote-http
speaks, Spin's own (/infer, /embed, camelCase usage) and OpenAI's (/v1/chat/completions,
/v1/embeddings). It records each request, so the tests check what tauon sent (path, bearer token,
JSON body with the guest's params) as well as what the guest got back. The token appears in no log.
Every test runs on both component runtimes (`component_runtime`): the LLM interface's records, float
lists and lists of lists cross tauon's canonical ABI on its runtime."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import extra_component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

TOKEN = "llm-token-s3cr3t"


@functools.cache
def _llm_wasm() -> bytes:
    return extra_component_path("python-llm").read_bytes()


class FakeLlm(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port: int = self.server_address[1]


ANSWERS: dict[str, Any] = {
    "/infer": {"text": "spin says hi", "usage": {"promptTokenCount": 3, "generatedTokenCount": 4}},
    "/embed": {"embeddings": [[0.5, 1.5], [2.0, -1.0]], "usage": {"promptTokenCount": 5}},
    "/v1/chat/completions": {"choices": [{"message": {"role": "assistant", "content": "openai says hi"}}],
                             "usage": {"prompt_tokens": 6, "completion_tokens": 7}},
    "/v1/embeddings": {"data": [{"embedding": [0.25]}, {"embedding": [0.75]}], "usage": {"prompt_tokens": 8}},
}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeLlm

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append((self.path, self.headers.get("authorization", ""), body))
        if body.get("model") == "broken":
            answer: Any = {"error": {"message": "model is on fire"}}
        else:
            answer = ANSWERS.get(self.path, {"nope": True})
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _deploy(tauon: TauonProcess, registry: RegistryServer, name: str, rc: str | None) -> str:
    app = SpinAppSpec(name=name, components=[SpinComponent(
        id="llm", wasm=_llm_wasm(), metadata={"ai_models": ["llama2-chat", "all-minilm-l6-v2", "broken"]})],
        triggers=[{"route": "/...", "component": "llm"}])
    ref = push_app(registry, f"llm/{name}", "v1", app)
    port = free_port()
    extra = {"runtime_config": rc} if rc else {}
    (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port, **extra))
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, component_runtime: str,
           shared_cache: Path) -> Iterator[tuple[dict[str, str], FakeLlm, TauonProcess]]:
    server = FakeLlm()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with run_tauon(tmp_path_factory.mktemp("llm"), "--workers", "1", cache_dir=shared_cache) as tauon:
            for name, api in (("spin", None), ("openai", "open_ai")):
                text = (f'[llm_compute]\ntype = "remote_http"\nurl = "http://127.0.0.1:{server.port}/ignored"\n'
                        f'auth_token = "{TOKEN}"\n' + (f'api_type = "{api}"\n' if api else ""))
                (tauon.watch_dir / f"{name}.toml").write_text(text)
            urls = {name: _deploy(tauon, registry, name, rc)
                    for name, rc in (("spin", "spin.toml"), ("openai", "openai.toml"), ("none", None))}
            for url in urls.values():
                wait_http(f"{url}/.well-known/spin/health", timeout=240)
            yield urls, server, tauon
    finally:
        server.shutdown()
        server.server_close()


def test_spin_protocol_inference_and_embeddings(served: tuple[dict[str, str], FakeLlm, TauonProcess]) -> None:
    urls, server, _ = served
    r = httpx.post(f"{urls['spin']}/infer-max/llama2-chat", content=b"hello", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "spin says hi", "prompt": 3, "generated": 4}
    path, auth, body = server.seen[-1]
    assert (path, auth) == ("/infer", f"bearer {TOKEN}")
    assert body["model"] == "llama2-chat" and body["prompt"] == "hello"
    assert body["options"]["maxTokens"] == 7 and body["options"]["topK"] == 40
    assert body["options"]["temperature"] == pytest.approx(0.5)
    r = httpx.post(f"{urls['spin']}/embed/all-minilm-l6-v2", content=b"a\nb", timeout=60)
    assert r.json() == {"embeddings": [[0.5, 1.5], [2.0, -1.0]], "prompt": 5}
    assert server.seen[-1][0] == "/embed" and server.seen[-1][2] == {"model": "all-minilm-l6-v2",
                                                                     "input": ["a", "b"]}


def test_openai_protocol(served: tuple[dict[str, str], FakeLlm, TauonProcess]) -> None:
    urls, server, _ = served
    r = httpx.post(f"{urls['openai']}/infer/llama2-chat", content=b"hi there", timeout=60)
    assert r.json() == {"text": "openai says hi", "prompt": 6, "generated": 7}
    path, auth, body = server.seen[-1]
    assert (path, auth) == ("/v1/chat/completions", f"bearer {TOKEN}")
    assert body["messages"] == [{"role": "user", "content": "hi there"}]
    assert body["max_completion_tokens"] == 100  # the SDK's default params
    r = httpx.post(f"{urls['openai']}/embed/all-minilm-l6-v2", content=b"x\ny", timeout=60)
    assert r.json() == {"embeddings": [[0.25], [0.75]], "prompt": 8}
    r = httpx.post(f"{urls['openai']}/infer/broken", content=b"?", timeout=60)
    assert (r.status_code, "model is on fire" in r.text, "RuntimeError" in r.text) == (500, True, True)


def test_errors_and_no_token_in_logs(served: tuple[dict[str, str], FakeLlm, TauonProcess]) -> None:
    urls, server, tauon = served
    before = len(server.seen)
    r = httpx.post(f"{urls['spin']}/infer/not-listed", content=b"x", timeout=60)
    assert r.status_code == 500 and "does not have access to use 'not-listed'" in r.text
    r = httpx.post(f"{urls['none']}/infer/llama2-chat", content=b"x", timeout=60)
    assert r.status_code == 500 and "Local LLM operations are not supported" in r.text
    assert len(server.seen) == before  # neither reached the server
    tauon.wait_log(r"llm_compute: remote_http http://127\.0\.0\.1:\d+ api_type=open_ai", timeout=10)
    assert TOKEN not in tauon.log()
