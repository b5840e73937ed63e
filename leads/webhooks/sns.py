"""Amazon SNS message signatures, checked before anymail's Amazon SES webhooks read a message.

anymail 15.2 checks basic auth and that the SNS headers match the body, but not the signature
("Future: Verify SNS message signature" in anymail/webhooks/amazon_ses.py). Basic auth alone
proves only that the sender knows our URL's secret; the signature proves that Amazon SNS sent
this very message. The check follows AWS's documented algorithm
(https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html): the string
to sign is built from the message's fields in a fixed order, SignatureVersion 1 is
SHA1withRSA and 2 is SHA256withRSA, and the certificate comes from SigningCertURL only when that
URL's origin matches a pattern (by default https on an sns.<region>.amazonaws.com host, whose
TLS certificate vouches for it).

A bad or missing signature is anymail's AnymailWebhookValidationFailure (400: SNS does not
retry client errors, and a forged message should never come back). A certificate we cannot
fetch (its server down, slow or failing) says nothing about the message, so it is answered
503: SNS retries server errors, and the message is checked again once the certificate can be
read. While the check is on, no message is accepted unchecked.

A valid signature proves that SNS sent the message, not that it came from our topic (anyone's
topic can be subscribed to our URL): the basic-auth secret and, when configured, the list of
accepted topic ARNs say that.
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailWebhookValidationFailure
from anymail.utils import get_anymail_setting
from anymail.webhooks import amazon_ses
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

# The origin (scheme://host[:port]) SigningCertURL must have, matched in full.
DEFAULT_CERT_URL_PATTERN = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
CERT_FETCH_TIMEOUT_SECONDS = 5
CERT_MAX_BYTES = 64 * 1024  # an SNS certificate is about 2 KB
RETRY_AFTER_SECONDS = 60

# The signed fields, in the order AWS documents; Subject is signed only when present.
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": CONFIRMATION_FIELDS,
}
OPTIONAL_FIELDS = frozenset({"Subject"})
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class SigningCertificateUnavailable(Exception):
    """The signing certificate could not be read now; the message may be genuine, so SNS should retry."""


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signed for this message: `name\\nvalue\\n` for each signed field in order."""
    fields = SIGNED_FIELDS.get(message.get("Type", ""))
    if fields is None:
        raise AnymailWebhookValidationFailure(f"SNS message type {message.get('Type')!r} is not signed")
    parts = []
    for name in fields:
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise AnymailWebhookValidationFailure(f"SNS message lacks its signed field {name}")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere: only the URL that matched the pattern is read."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_RefuseRedirects)


@functools.lru_cache(maxsize=64)
def signing_certificate(url: str) -> x509.Certificate:
    """The certificate at `url`, cached in this process by URL (SNS gives each certificate its
    own URL, so a URL's certificate never changes). A failure is not cached: the next message
    tries again. Raises SigningCertificateUnavailable when the server cannot answer now, and
    AnymailWebhookValidationFailure when it answers with something that is not a certificate."""
    try:
        with _opener.open(url, timeout=CERT_FETCH_TIMEOUT_SECONDS) as response:
            pem = response.read(CERT_MAX_BYTES + 1)
    except urllib.error.HTTPError as error:
        if error.code < 500:  # missing, forbidden or a redirect: no certificate is there
            raise AnymailWebhookValidationFailure(f"SNS signing certificate answered HTTP {error.code}") from None
        raise SigningCertificateUnavailable(f"SNS signing certificate answered HTTP {error.code}") from None
    except (OSError, http.client.HTTPException) as error:  # refused, timed out, cut off
        raise SigningCertificateUnavailable(f"SNS signing certificate could not be read: {error}") from None
    if len(pem) > CERT_MAX_BYTES:
        raise AnymailWebhookValidationFailure("SNS signing certificate is too large")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise AnymailWebhookValidationFailure("SNS signing certificate is not a PEM certificate") from None


@dataclass(frozen=True)
class SnsSignature:
    """Verifies SNS message signatures. Safe to share between threads (the certificate cache
    is the only state, and a double fetch on a cold cache is harmless)."""

    cert_url_pattern: re.Pattern[str]

    def verify(self, message: Mapping[str, Any]) -> None:
        """Return if `message` (the decoded SNS JSON body) carries SNS's valid signature, else
        raise AnymailWebhookValidationFailure (or SigningCertificateUnavailable, see above)."""
        algorithm = SIGNATURE_HASHES.get(message.get("SignatureVersion", ""))
        if algorithm is None:
            raise AnymailWebhookValidationFailure(
                f"SNS SignatureVersion {message.get('SignatureVersion')!r} is not supported"
            )
        signature = self._decoded_signature(message.get("Signature"))
        signed = string_to_sign(message)
        certificate = signing_certificate(self.checked_cert_url(message.get("SigningCertURL")))
        now = datetime.now(tz=UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise AnymailWebhookValidationFailure("SNS signing certificate is not valid now")
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise AnymailWebhookValidationFailure("SNS signing certificate does not hold an RSA key")
        try:
            public_key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise AnymailWebhookValidationFailure("SNS message signature does not match") from None

    def checked_cert_url(self, url: object) -> str:
        """`url` if its origin matches the pattern; userinfo is refused so that the host read
        is the host checked."""
        if not isinstance(url, str):
            raise AnymailWebhookValidationFailure("SNS message lacks SigningCertURL")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise AnymailWebhookValidationFailure("SNS SigningCertURL is not a URL") from None
        origin = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port is not None else "")
        if parts.username is not None or not self.cert_url_pattern.fullmatch(origin):
            raise AnymailWebhookValidationFailure(f"SNS SigningCertURL {origin!r} is not an SNS certificate host")
        return url

    @staticmethod
    def _decoded_signature(value: object) -> bytes:
        if not isinstance(value, str) or not value:
            raise AnymailWebhookValidationFailure("SNS message lacks its Signature")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise AnymailWebhookValidationFailure("SNS Signature is not base64") from None


def _flag(value: object) -> bool:
    """An ANYMAIL option as a switch: env values arrive JSON-decoded (true, 0, ...) or as text."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


class SnsSignatureMixin:
    """Runs the signature check after anymail's own validators (basic auth, SNS headers), so an
    unauthenticated post never makes us fetch a certificate, and answers 503 when the
    certificate cannot be read. Options (ANYMAIL settings, or as_view keyword arguments):
    AMAZON_SES_VERIFY_SNS_SIGNATURES (default on), AMAZON_SES_SNS_CERT_URL_PATTERN, and
    AMAZON_SES_SNS_TOPIC_ARNS (a list; empty admits any topic)."""

    esp_name = "Amazon SES"
    verify_sns_signatures = True
    sns_cert_url_pattern = DEFAULT_CERT_URL_PATTERN
    sns_topic_arns: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        options = {"esp_name": self.esp_name, "kwargs": kwargs}
        self.verify_sns_signatures = _flag(get_anymail_setting("verify_sns_signatures", default=True, **options))
        pattern = get_anymail_setting("sns_cert_url_pattern", default=DEFAULT_CERT_URL_PATTERN, **options)
        self.sns_signature = SnsSignature(cert_url_pattern=re.compile(pattern))
        self.sns_topic_arns = tuple(get_anymail_setting("sns_topic_arns", default=(), **options))
        super().__init__(**kwargs)

    @staticmethod
    def _parse_sns_message(request: HttpRequest) -> dict[str, Any]:
        """anymail's parse, with a body that is not a JSON object refused (400) rather than
        left to fail as a server error, which SNS would retry for nothing."""
        try:
            message = amazon_ses.AmazonSESBaseWebhookView._parse_sns_message(request)
        except AnymailAPIError:
            raise AnymailWebhookValidationFailure("SNS message body is not JSON") from None
        if not isinstance(message, dict):
            raise AnymailWebhookValidationFailure("SNS message body is not a JSON object")
        return message

    def run_validators(self, request: HttpRequest) -> None:
        super().run_validators(request)  # type: ignore[misc]
        message = self._parse_sns_message(request)
        if self.verify_sns_signatures:
            self.sns_signature.verify(message)
        # A signature proves only that SNS sent it: anyone's topic can be pointed at our URL.
        if self.sns_topic_arns and message.get("TopicArn") not in self.sns_topic_arns:
            raise AnymailWebhookValidationFailure(f"SNS topic {message.get('TopicArn')!r} is not one of ours")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().post(request, *args, **kwargs)  # type: ignore[misc]
        except SigningCertificateUnavailable as error:
            logger.warning("SNS message refused for now, SNS will retry: %s", error)
            return HttpResponse(status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class AmazonSESTrackingWebhookView(SnsSignatureMixin, amazon_ses.AmazonSESTrackingWebhookView):
    """anymail's SES tracking webhook, with SNS signatures checked."""


class AmazonSESInboundWebhookView(SnsSignatureMixin, amazon_ses.AmazonSESInboundWebhookView):
    """anymail's SES inbound webhook, with SNS signatures checked."""
