"""Amazon SNS signing for tests: an RSA key with its self-signed certificate, a loopback HTTP
server that serves certificates, and the string-to-sign SNS signs.

The signed fields are written out here in AWS's documented order
(https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html), not taken
from the code under test (leads/webhooks/sns.py), so that a test checks that code against the
documentation."""

from __future__ import annotations

import base64
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")

# The loopback origin on any port (a test that starts its own servers); SnsSigner.cert_url_pattern
# is the stricter one, its own server's origin only.
LOOPBACK_CERT_URL_PATTERN = r"^http://127\.0\.0\.1:\d+$"


class SigningKey:
    """An RSA key and its self-signed certificate, as SNS holds them."""

    def __init__(self, common_name: str = "sns.amazonaws.com") -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(tz=UTC)
        self.certificate_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.private_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )

    def sign(self, message: dict[str, Any], *, version: str, cert_url: str) -> dict[str, Any]:
        """`message` with SignatureVersion, SigningCertURL and Signature, as SNS sends it."""
        fields = NOTIFICATION_FIELDS if message["Type"] == "Notification" else CONFIRMATION_FIELDS
        signed = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303  (SNS version 1)
        signature = self.private_key.sign(signed.encode(), padding.PKCS1v15(), algorithm)
        return {
            **message,
            "SignatureVersion": version,
            "SigningCertURL": cert_url,
            "Signature": base64.b64encode(signature).decode(),
        }


class CertificateServer:
    """A loopback HTTP server answering GET with the bytes registered for a path (or the
    status registered for it), recording every path asked for."""

    def __init__(self, port: int = 0) -> None:
        self.documents: dict[str, bytes | int] = {}
        self.requested: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requested.append(self.path)
                document = server.documents.get(self.path, 404)
                if isinstance(document, int):
                    self.send_error(document)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, document: bytes | int) -> str:
        """Serve `document` (or answer with that status) at a new path; return its URL."""
        path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
        self.documents[path] = document
        return f"{self.origin}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SnsSigner:
    """One key whose certificate a loopback server publishes: signs messages as SNS does. The
    webhooks admit its certificate URL when their AMAZON_SES_SNS_CERT_URL_PATTERN is
    `cert_url_pattern`."""

    def __init__(self) -> None:
        self.key = SigningKey()
        self.server = CertificateServer()
        self.cert_url = self.server.publish(self.key.certificate_pem)
        self.cert_url_pattern = f"^{re.escape(self.server.origin)}$"

    def sign(self, message: dict[str, Any], *, version: str = "1") -> dict[str, Any]:
        return self.key.sign(message, version=version, cert_url=self.cert_url)
