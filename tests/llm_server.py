"""A real OpenAI-compatible chat-completions server on loopback, scripted per request by the tests.

`POST /v1/chat/completions` answers with the next scripted `Reply` (a good answer, malformed
content, a slow answer, an error status with headers) and records what it received, so tests
can check what the client sent and how many attempts reached the server. Unscripted requests
get a 500 that says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMPLETIONS_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]


def completion(content: str, *, model: str = "test-model") -> dict[str, Any]:
    """A chat-completions response body whose single message says `content`."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    }


def answer(score: float, persona: str, reasoning: str) -> Reply:
    """A well-formed answer to the scoring schema."""
    return Reply(body=completion(json.dumps({"score": score, "persona": persona, "reasoning": reasoning})))


def malformed(content: str = "I think this lead is great!") -> Reply:
    """A 200 whose message content breaks the schema."""
    return Reply(body=completion(content))


def slow(seconds: float) -> Reply:
    """A good answer that arrives only after `seconds`."""
    return Reply(body=answer(0.5, "smb", "late").body, delay=seconds)


def error(status: int, headers: dict[str, str] | None = None) -> Reply:
    """An OpenAI-style error response."""
    body = {"error": {"message": f"scripted {status}", "type": "server_error", "param": None, "code": None}}
    return Reply(status=status, body=body, headers=headers or {})


class FakeLlmServer:
    """The server, its script (a queue of replies) and what it received. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._received: list[ReceivedRequest] = []
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # slow replies are woken by stop(), not waited for
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-llm", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's host is text (bytes only for AF_UNIX)
        return f"http://{host}:{port}/v1"

    @property
    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLlmServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _take(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self._received.append(request)
            return self._script.popleft() if self._script else error(500, {"X-Unscripted": "1"})


def _handler_for(server: FakeLlmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            if self.path != COMPLETIONS_PATH:
                self._send(error(404))
                return
            reply = server._take(ReceivedRequest(path=self.path, headers=headers, body=json.loads(raw or b"{}")))
            if reply.delay and server._stopping.wait(reply.delay):
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            payload = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
