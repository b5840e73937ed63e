"""Privacy requests: export everything held about a person, or erase it (GDPR articles 15 and 17).

A person is found by their normalised address (`address_key`): the leads whose contact_email is
it (ignoring case), every outreach to it or to those leads, the engagement of that outreach or
naming the address, the address's suppression entry, and the outbox rows and dead letters keyed
by those leads' lightfield_ids or containing the address. Every request leaves a PrivacyRequest
audit row holding the SHA-256 of the address, never the address.

What erasure decides, and why:
- Leads keep their company facts, score, persona, status and times (the funnel stays true) and
  lose the contact, the time zone and the raw payload's contact; the person's name is also taken
  out of the descriptive text. `lightfield_id` is the CRM's id for the person, a direct link back
  to them, so it becomes a random pseudonym (`erased-…`) everywhere it occurs in the database.
- Outreach keeps its status, variant, reward and times, so the bandit's history stays whole
  (Variant counters are stored columns and are not touched); address, subject and bodies become
  ERASED. `recipient_key` becomes a per-person marker rather than one shared text, so the
  per-company-domain cap still counts the person as one. Outreach not yet sent is cancelled.
- Engagement payloads become ERASED_PAYLOAD (updated in bulk: the append-only guard is save()'s).
- Outbox rows already published are deleted: they served their purpose. Rows not yet published
  are rewritten, not deleted, because the stage that reads them must still run them (a pending
  engagement carries a reward): a `lead.created` keeps a valid event without its contact, an
  engagement loses its provider payload, every id is renamed to its pseudonym.
- Dead letters stay (staff still see that something failed), with the value, key, headers and
  error redacted; a value that is not JSON becomes ERASED, which can only be discarded.
- The address stays suppressed by hash only (reason erased), so the person is never mailed again
  under any lead; an existing entry for the address is turned into that one.
Backups are not rewritten; see docs/OPERATIONS.md, "Privacy requests", and `privacy_reapply`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from leads.addresses import InvalidAddress
from leads.models import DeadLetter, EngagementEvent, Lead, OutboxEvent, Outreach, PrivacyRequest, Suppression
from leads.services.redaction import ERASED, ERASED_PAYLOAD, Redactor, name_words
from leads.services.suppression import address_key, suppression_add_hashed, value_hash
from pipeline_whisperer.exceptions import InvalidInput

# Outreach that has not been sent: erasure cancels it, so no dispatcher writes to an erased row.
_UNSENT = (Outreach.Status.SCHEDULED, Outreach.Status.PENDING)
_LEAD_CONTACT = {"contact_name": "", "contact_email": "", "contact_title": "", "contact_linkedin": "", "time_zone": ""}
_LEAD_TEXT = (
    "company_name", "company_description", "source_channel", "source_campaign", "source_referrer",
    "timeline", "failure_reason", "not_contacted_reason",
)  # fmt: skip
_LEAD_JSON = ("tech_stack", "pain_points", "scoring_reasons")


@dataclass(frozen=True)
class ErasureReport:
    """What one erasure changed: rows per table (and kind of change), and its audit row."""

    subject_hash: str
    counts: Mapping[str, int]
    request_id: int


def subject_key(email: str) -> str:
    """The address a request is about, normalised; InvalidInput (400) when it is not one."""
    try:
        return address_key(email)
    except InvalidAddress as error:
        raise InvalidInput(f"{email!r} is not a valid email address: {error}", errors={"email": [str(error)]}) from None


@dataclass(frozen=True)
class _Subject:
    key: str
    leads: list[Lead]
    outreach: list[Outreach]
    # As found: erasure renames the leads' ids while it works.
    lightfield_ids: tuple[str, ...]

    def engagements(self) -> models.QuerySet[EngagementEvent]:
        mentions = EngagementEvent.objects.alias(text=Cast("payload", TextField())).filter(text__icontains=self.key)
        return EngagementEvent.objects.filter(outreach__in=[o.pk for o in self.outreach]) | mentions

    def outbox(self) -> models.QuerySet[OutboxEvent]:
        text = Cast("payload", TextField())
        return OutboxEvent.objects.alias(text=text).filter(Q(key__in=self.lightfield_ids) | Q(text__icontains=self.key))

    def dead_letters(self) -> models.QuerySet[DeadLetter]:
        mentions = Q(value__icontains=self.key) | Q(error__icontains=self.key) | Q(headers_text__icontains=self.key)
        return DeadLetter.objects.alias(headers_text=Cast("headers", TextField())).filter(
            Q(key__in=self.lightfield_ids) | mentions
        )

    def suppressions(self) -> models.QuerySet[Suppression]:
        return Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value_hash=value_hash(self.key))


def _subject(key: str, *, lock: bool = False) -> _Subject:
    leads_found = Lead.objects.filter(contact_email__iexact=key).order_by("pk")
    outreach_found = Outreach.objects.filter(
        Q(lead__in=leads_found.values("pk")) | Q(to_email__iexact=key) | Q(recipient_key=key)
    ).order_by("pk")
    if lock:  # against a concurrent ingest or send changing the rows being erased
        leads_found, outreach_found = leads_found.select_for_update(), outreach_found.select_for_update()
    leads = list(leads_found)
    return _Subject(
        key=key, leads=leads, outreach=list(outreach_found), lightfield_ids=tuple(lead.lightfield_id for lead in leads)
    )


def _row(instance: models.Model, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields if f.name not in exclude}


def privacy_export(*, email: str, requested_by: str) -> dict[str, Any]:
    """Everything held about the person at `email`, as JSON-serialisable data; records the request
    (kind export). InvalidInput for a malformed address."""
    key = subject_key(email)
    subject = _subject(key)
    data = {
        "email": key,
        "exported_at": timezone.now(),
        "leads": [_row(lead) for lead in subject.leads],
        "outreach": [_row(outreach) for outreach in subject.outreach],
        "engagement_events": [_row(event) for event in subject.engagements().order_by("pk")],
        "suppressions": [_row(entry, exclude=("value_hash",)) for entry in subject.suppressions()],
        "outbox_events": [_row(row) for row in subject.outbox().order_by("pk")],
        "dead_letters": [_row(row) for row in subject.dead_letters().order_by("pk")],
    }
    summary = {name: len(rows) for name, rows in data.items() if isinstance(rows, list)}
    PrivacyRequest.objects.create(
        kind=PrivacyRequest.Kind.EXPORT, subject_hash=value_hash(key), requested_by=requested_by, summary=summary
    )
    exported: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return exported


def privacy_erase(*, email: str, requested_by: str) -> ErasureReport:
    """Erase the person at `email` from every table, in one transaction (see the module's
    docstring for what is kept); suppress the address by hash and record the request (kind erase,
    rows per table). An address that matches nothing is still suppressed and recorded.
    InvalidInput for a malformed address. Idempotent: a second run finds nothing more to erase."""
    key = subject_key(email)
    digest = value_hash(key)
    with transaction.atomic():
        subject = _subject(key, lock=True)
        redactor = _redactor_for(subject)
        counts = {
            "leads": _erase_leads(subject, redactor),
            "outreach": _erase_outreach(subject, redactor),
            "outreach_cancelled": _cancel_unsent(subject),
            "engagement_events": subject.engagements().update(payload=ERASED_PAYLOAD),
            **_erase_outbox(subject, redactor),
            "dead_letters": _erase_dead_letters(subject, redactor),
            "suppressions_replaced": subject.suppressions().exclude(value="", reason=Suppression.Reason.ERASED).count(),
            "admin_log_entries": _erase_admin_log(subject),
        }
        suppression_add_hashed(
            kind=Suppression.Kind.ADDRESS, digest=digest, reason=Suppression.Reason.ERASED, source="privacy"
        )
        subject.suppressions().update(note="")
        audit = PrivacyRequest.objects.create(
            kind=PrivacyRequest.Kind.ERASE, subject_hash=digest, requested_by=requested_by, summary=counts
        )
    return ErasureReport(subject_hash=digest, counts=counts, request_id=audit.pk)


def _redactor_for(subject: _Subject) -> Redactor:
    phrases = {subject.key}
    words: set[str] = set()
    for lead in subject.leads:
        phrases.update({lead.contact_email, lead.contact_name, lead.contact_linkedin})
        words |= name_words(lead.contact_name)
    phrases.update(outreach.to_email for outreach in subject.outreach)
    renames = {lead.lightfield_id: f"erased-{secrets.token_hex(8)}" for lead in subject.leads}
    return Redactor(phrases=phrases, words=words, renames=renames)


def _erase_leads(subject: _Subject, redactor: Redactor) -> int:
    for lead in subject.leads:
        lead.lightfield_id = redactor.renames[lead.lightfield_id]
        for name, blank in _LEAD_CONTACT.items():
            setattr(lead, name, blank)
        for name in _LEAD_TEXT:
            setattr(lead, name, redactor.text(getattr(lead, name)))
        for name in _LEAD_JSON:
            setattr(lead, name, redactor.json(getattr(lead, name)))
        lead.raw_payload = redactor.lead_event(lead.raw_payload)
        fields = ["lightfield_id", *_LEAD_CONTACT, *_LEAD_TEXT, *_LEAD_JSON, "raw_payload", "updated_at"]
        lead.save(update_fields=fields)
    return len(subject.leads)


def _erase_outreach(subject: _Subject, redactor: Redactor) -> int:
    # One marker per person, not one shared text: recent outreach per company domain is counted
    # in distinct recipient keys (OUTREACH_MAX_PER_COMPANY_DOMAIN).
    marker = f"{ERASED}:{secrets.token_hex(8)}"
    for outreach in subject.outreach:
        outreach.to_email = outreach.subject = outreach.body = ERASED
        outreach.html_body = ERASED if outreach.html_body else ""
        outreach.recipient_key = marker
        outreach.error = redactor.text(outreach.error)
    fields = ["to_email", "recipient_key", "subject", "body", "html_body", "error"]
    Outreach.objects.bulk_update(subject.outreach, fields, batch_size=500)
    return len(subject.outreach)


def _cancel_unsent(subject: _Subject) -> int:
    now = timezone.now()
    return Outreach.objects.filter(pk__in=[o.pk for o in subject.outreach], status__in=_UNSENT).update(
        status=Outreach.Status.CANCELLED,
        cancelled_at=now,
        error="cancelled: the recipient's personal data was erased",
        updated_at=now,
    )


def _erase_outbox(subject: _Subject, redactor: Redactor) -> dict[str, int]:
    rows = list(subject.outbox().select_for_update())
    published = [row.pk for row in rows if row.published_at is not None]
    unpublished = [row for row in rows if row.published_at is None]
    for row in unpublished:
        row.key = redactor.text(row.key)
        row.payload = redactor.outbox_payload(row.event_type, row.payload)
        row.last_error = redactor.text(row.last_error)
    OutboxEvent.objects.bulk_update(unpublished, ["key", "payload", "last_error"], batch_size=500)
    OutboxEvent.objects.filter(pk__in=published).delete()
    return {"outbox_deleted": len(published), "outbox_redacted": len(unpublished)}


def _erase_dead_letters(subject: _Subject, redactor: Redactor) -> int:
    rows = list(subject.dead_letters().select_for_update())
    for row in rows:
        event_type = str(row.headers.get("event_type", ""))
        try:
            row.value = json.dumps(redactor.outbox_payload(event_type, json.loads(row.value)), separators=(",", ":"))
        except ValueError:
            row.value = ERASED  # not JSON: nothing could be kept valid, and it can only be discarded
        row.key = redactor.text(row.key)
        row.headers = redactor.json(row.headers)
        row.error = redactor.text(row.error)
    DeadLetter.objects.bulk_update(rows, ["value", "key", "headers", "error"], batch_size=500)
    return len(rows)


def _erase_admin_log(subject: _Subject) -> int:
    """The admin log names a lead by its str(), which holds its (old) lightfield_id."""
    content_type = ContentType.objects.get_for_model(Lead)
    updated = 0
    for lead in subject.leads:
        entries = LogEntry.objects.filter(content_type=content_type, object_id=str(lead.pk))
        updated += entries.update(object_repr=str(lead)[:200])
    return updated


# Anything shaped like an address inside free text (outbox payloads, dead letters).
_ADDRESS_LIKE = re.compile(r"[^\s\"'<>,;:()\[\]\\]+@[^\s\"'<>,;:()\[\]\\]+")


def privacy_reapply(*, requested_by: str) -> list[ErasureReport]:
    """After restoring a backup taken before some erasures: erase again every address whose hash
    an erase audit row holds (the audit rows hold only hashes, so every address the database holds
    is hashed and compared), and make sure each such hash is suppressed. Safe to run repeatedly."""
    digests = set(PrivacyRequest.objects.filter(kind=PrivacyRequest.Kind.ERASE).values_list("subject_hash", flat=True))
    found: dict[str, str] = {}
    for candidate in _addresses_held():
        try:
            key = address_key(candidate)
        except InvalidAddress:
            continue
        if value_hash(key) in digests:
            found.setdefault(value_hash(key), key)
    reports = [privacy_erase(email=key, requested_by=requested_by) for key in found.values()]
    for digest in digests - found.keys():
        suppression_add_hashed(
            kind=Suppression.Kind.ADDRESS, digest=digest, reason=Suppression.Reason.ERASED, source="privacy"
        )
    return reports


def _addresses_held() -> Iterator[str]:
    """Every address in the database's personal columns, and any address-shaped text in the
    outbox, dead letters and engagement payloads (repeats included: the caller deduplicates)."""
    yield from Lead.objects.exclude(contact_email="").values_list("contact_email", flat=True).distinct().iterator()
    yield from Outreach.objects.values_list("to_email", flat=True).distinct().iterator()
    suppressed = Suppression.objects.filter(kind=Suppression.Kind.ADDRESS).exclude(value="")
    yield from suppressed.values_list("value", flat=True).iterator()
    texts = [
        OutboxEvent.objects.annotate(text=Cast("payload", TextField())).values_list("text", flat=True),
        DeadLetter.objects.values_list("value", flat=True),
        EngagementEvent.objects.annotate(text=Cast("payload", TextField())).values_list("text", flat=True),
    ]
    for queryset in texts:
        for text in queryset.iterator():
            yield from _ADDRESS_LIKE.findall(text or "")
