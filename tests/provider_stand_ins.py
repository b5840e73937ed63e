"""An email provider's send API on loopback: Postmark's `POST /email`, Mailgun's
`POST /v3/<domain>/messages` and Amazon SES v2's `POST /v2/email/outbound-emails`, answering in
their documented shapes over real HTTP/1.1 with keep-alive, so anymail's own backends (requests,
boto3) talk to it exactly as to the provider.

It records every request (and every TCP connection, to show one is reused), and on demand
answers a recipient with an error of the provider's, answers everything with an outage status,
hangs without answering (a timeout), or answers slowly. Nothing here is a mock of our code.
"""

from __future__ import annotations

import base64
import email
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

HANG = "hang"  # an outage that never answers: the client's timeout ends the request


@dataclass
class Received:
    """One send request: which API, its fields (Postmark's and SES's JSON, Mailgun's form: a list
    per field), the recipient, the raw MIME message (SES), and the provider message id answered
    (None when it was not accepted)."""

    api: str
    path: str
    headers: dict[str, str]
    fields: dict[str, Any]
    recipient: str
    raw: Message | None = None
    accepted_id: str | None = None


@dataclass
class ProviderStandIn:
    """Start with `start()`; `url` is the base to put in ANYMAIL's POSTMARK_API_URL (or
    `url + "/v3"` in MAILGUN_API_URL, or as the SES client's `endpoint_url`). `outage` (an HTTP
    status, or HANG) answers every request so until `recover()`; `errors[recipient]` answers that
    recipient with (status, JSON body); after `accept_limit` accepted messages it hangs (until
    `recover()`): a provider gone quiet."""

    delay: float = 0.0  # seconds before each answer: a slow provider
    outage: int | str | None = None
    accept_limit: int | None = None
    errors: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.recovered = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> ProviderStandIn:
        threading.Thread(target=self.server.serve_forever, name="provider-stand-in", daemon=True).start()
        return self

    def stop(self) -> None:
        self.recovered.set()  # lets hanging requests end
        self.server.shutdown()
        self.server.server_close()

    def recover(self) -> None:
        self.outage, self.accept_limit = None, None
        self.recovered.set()

    def accepted(self) -> list[Received]:
        with self.lock:
            return [request for request in self.received if request.accepted_id is not None]

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def answer(self, request: Received) -> tuple[int, dict[str, Any]] | None:
        """The status and JSON body for `request` (None: hung up unanswered), recording it."""
        with self.lock:
            self.received.append(request)
            answer = self._decide(request)
        if answer is None:
            self.recovered.wait(30)
            return None
        if self.delay:
            time.sleep(self.delay)
        return answer

    def _decide(self, request: Received) -> tuple[int, dict[str, Any]] | None:
        """Under the lock, so concurrent requests count against `accept_limit` one by one."""
        accepted = sum(earlier.accepted_id is not None for earlier in self.received)
        if self.outage == HANG or (self.accept_limit is not None and accepted >= self.accept_limit):
            return None
        if isinstance(self.outage, int):
            return self.outage, _outage_body(request.api, self.outage)
        if request.recipient in self.errors:
            return self.errors[request.recipient]
        request.accepted_id = _provider_id(request.api)
        return 200, _accepted_body(request)


def _provider_id(api: str) -> str:
    if api == "mailgun":
        return f"<{uuid.uuid4().hex}@mg.stand-in.example>"
    return str(uuid.uuid4()) if api == "postmark" else f"0100{uuid.uuid4().hex}-000000"


def _outage_body(api: str, status: int) -> dict[str, Any]:
    if api == "postmark":
        return {"ErrorCode": 100, "Message": "Maintenance"}
    if api == "ses":  # boto3 reads the error code from `__type`
        return {"__type": "TooManyRequestsException" if status == 429 else "InternalFailure", "message": "Try later"}
    return {}


def _accepted_body(request: Received) -> dict[str, Any]:
    if request.api == "postmark":  # https://postmarkapp.com/developer/api/email-api
        return {
            "To": request.recipient,
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": request.accepted_id,
            "ErrorCode": 0,
            "Message": "OK",
        }
    if request.api == "ses":  # SESv2 SendEmail
        return {"MessageId": request.accepted_id}
    return {"id": request.accepted_id, "message": "Queued. Thank you."}  # Mailgun's messages API


SEND_PATHS = ("/email", "/v2/email/outbound-emails")


def _parse(path: str, body: bytes) -> Received:
    """The send request at `path` (one of SEND_PATHS, or Mailgun's) with `body`."""
    if path == "/email":
        fields = json.loads(body)
        return Received("postmark", path, {}, fields, fields["To"])
    if path == "/v2/email/outbound-emails":
        fields = json.loads(body)
        raw = email.message_from_bytes(base64.b64decode(fields["Content"]["Raw"]["Data"]))
        return Received("ses", path, {}, fields, fields["Destination"]["ToAddresses"][0], raw)
    form = parse_qs(body.decode(), keep_blank_values=True)  # anymail posts a form without files
    return Received("mailgun", path, {}, form, form["to"][0])


def _handler_for(stand_in: ProviderStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a reused connection shows as one

        def handle(self) -> None:  # once per TCP connection
            with stand_in.lock:
                stand_in.connections += 1
            super().handle()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            known = self.path in SEND_PATHS or (self.path.startswith("/v3/") and self.path.endswith("/messages"))
            if not known:
                self._reply(404, {"message": "not found"})
                return
            request = _parse(self.path, body)
            request.headers = dict(self.headers.items())
            answer = stand_in.answer(request)
            if answer is None:
                self.close_connection = True
                return
            self._reply(*answer)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
