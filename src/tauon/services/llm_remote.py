"""`[llm_compute] type = "remote_http"`: fermyon:spin/llm calls answered by a remote HTTP server, as
Spin's crates/llm-remote-http does it.

api_type "default" (Spin's own protocol): POST <url>/infer with {"model", "prompt", "options":
{maxTokens, repeatPenalty, repeatPenaltyLastNTokenCount, temperature, topK, topP}} answered by
{"text", "usage": {promptTokenCount, generatedTokenCount}}, and POST <url>/embed with {"model",
"input"} answered by {"embeddings", "usage": {promptTokenCount}}. api_type "open_ai": POST
/v1/chat/completions (one user message; max_completion_tokens, frequency_penalty from the params)
and /v1/embeddings, answers read as OpenAI's (an {"error": {"message"}} body is the guest's
runtime-error). Both send `authorization: bearer <auth_token>`; the paths replace the URL's path, as
Rust's Url::join("/infer") does. Every failure is the guest's `runtime-error`; its text never holds
the token. A response over MAX_RESULT_BYTES is refused (Spin's bound is its host buffer limit)."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from tauon.runtimeconfig.llm import RemoteLlmConfig

MAX_RESULT_BYTES = 16 * 1024 * 1024
DEFAULT_PARAMS = {"max-tokens": 100, "repeat-penalty": 1.1, "repeat-penalty-last-n-token-count": 64,
                  "temperature": 0.8, "top-k": 40, "top-p": 0.9}
"""Spin's defaults when the guest passes no params (spin-spec §5.6)."""


class LlmError(Exception):
    """The guest's `runtime-error` with this text."""


class RemoteLlm:
    def __init__(self, config: RemoteLlmConfig) -> None:
        self._config = config
        parts = urlsplit(config.url)
        self._scheme, self._host = parts.scheme, parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)

    def __repr__(self) -> str:
        return f"RemoteLlm({self._scheme}://{self._host}:{self._port}, api_type={self._config.api_type})"

    def infer(self, model: str, prompt: str, params: dict[str, Any] | None,
              deadline: float) -> dict[str, Any]:
        p = {**DEFAULT_PARAMS, **(params or {})}
        if self._config.api_type == "open_ai":
            body = {"messages": [{"role": "user", "content": prompt}], "model": model,
                    "max_completion_tokens": p["max-tokens"], "frequency_penalty": p["repeat-penalty"]}
            answer = self._post("/v1/chat/completions", body, deadline, json_body=True)
            choices = answer["choices"]
            text = choices[0]["message"]["content"] if choices else ""
            usage = answer["usage"]
            return _inferencing(text, usage["prompt_tokens"], usage["completion_tokens"])
        options = {"maxTokens": p["max-tokens"], "repeatPenalty": p["repeat-penalty"],
                   "repeatPenaltyLastNTokenCount": p["repeat-penalty-last-n-token-count"],
                   "temperature": p["temperature"], "topK": p["top-k"], "topP": p["top-p"]}
        answer = self._post("/infer", {"model": model, "prompt": prompt, "options": options}, deadline)
        usage = answer["usage"]
        return _inferencing(answer["text"], usage["promptTokenCount"], usage["generatedTokenCount"])

    def embed(self, model: str, data: list[str], deadline: float) -> dict[str, Any]:
        if self._config.api_type == "open_ai":
            answer = self._post("/v1/embeddings", {"input": data, "model": model}, deadline, json_body=True)
            vectors = [[float(x) for x in item["embedding"]] for item in answer["data"]]
            count = answer["usage"]["prompt_tokens"]
        else:
            answer = self._post("/embed", {"model": model, "input": data}, deadline)
            vectors = [[float(x) for x in row] for row in answer["embeddings"]]
            count = answer["usage"]["promptTokenCount"]
        return {"embeddings": vectors, "usage": {"prompt-token-count": _u32(count)}}

    def _post(self, path: str, body: dict[str, Any], deadline: float, *, json_body: bool = False,
              ) -> dict[str, Any]:
        """POST `body` as JSON; the answer as a dict (a KeyError/TypeError on it is a bad answer)."""
        timeout = max(0.001, deadline - time.monotonic())
        headers = {"authorization": f"bearer {self._config.auth_token}"}
        if json_body:  # reqwest's .json(); Spin's default protocol sends the text without a type
            headers["content-type"] = "application/json"
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_RESULT_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise LlmError(f"POST {path} request error: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        if len(data) > MAX_RESULT_BYTES:
            raise LlmError(f"query result exceeds limit of {MAX_RESULT_BYTES} bytes")
        try:
            answer = json.loads(data)
        except ValueError as exc:
            raise LlmError(f'Failed to deserialize response for "POST {path}": {exc}') from None
        if not isinstance(answer, dict):
            raise LlmError(f'Failed to deserialize response for "POST {path}": not a JSON object')
        error = answer.get("error")
        if json_body and isinstance(error, dict) and isinstance(error.get("message"), str):
            raise LlmError(error["message"])
        return answer


def _u32(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise TypeError(f"not a token count: {value!r}")
    return value


def _inferencing(text: Any, prompt_tokens: Any, generated_tokens: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise TypeError("text is not a string")
    return {"text": text, "usage": {"prompt-token-count": _u32(prompt_tokens),
                                    "generated-token-count": _u32(generated_tokens)}}


def call(what: str, run: Any) -> tuple[str, Any]:
    """Run one request: ("ok", result) or ("err", ("runtime-error", text))."""
    try:
        return ("ok", run())
    except LlmError as exc:
        return ("err", ("runtime-error", str(exc)))
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        text = f"Failed to deserialize response for {what}: {type(exc).__name__}: {exc}"
        return ("err", ("runtime-error", text))
