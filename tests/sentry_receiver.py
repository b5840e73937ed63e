"""A local HTTP server standing in for Sentry: use `dsn` as SENTRY_DSN and read what arrived."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SentryReceiver:
    """Keeps every envelope posted to it (raw text, decompressed) and answers 200."""

    def __init__(self) -> None:
        self.envelopes: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.envelopes.append(body.decode(errors="replace"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://publickey@127.0.0.1:{self._server.server_address[1]}/1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SentryReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def events(self) -> list[dict[str, Any]]:
        """The error events received: envelope items whose header says `"type": "event"`."""
        found = []
        for envelope in self.envelopes:
            # An envelope header line, then per item a header line and a payload line.
            items = envelope.splitlines()[1:]
            for header, payload in zip(items[::2], items[1::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found
