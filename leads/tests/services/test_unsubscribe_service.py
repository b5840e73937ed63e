"""One-click unsubscribe through leads.services.unsubscribe: tokens, suppression, one event."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import signing
from django.utils import timezone

from leads.models import Lead, OutboxEvent, Outreach, Suppression, Variant
from leads.services.feedback import engagement_apply
from leads.services.suppression import suppressions_matching
from leads.services.unsubscribe import (
    InvalidUnsubscribeToken,
    unsubscribe_mailto,
    unsubscribe_outreach,
    unsubscribe_record,
    unsubscribe_token,
    unsubscribe_url,
)
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory
from leads.topics import OUTREACH_EVENTS

pytestmark = pytest.mark.django_db


def _sent(**fields: Any) -> Outreach:
    lead = LeadFactory(status=Lead.Status.CONTACTED, contact_email="Grace@Acme.example.com")
    variant = VariantFactory(sends=1)
    return OutreachFactory(lead=lead, variant=variant, status=Outreach.Status.SENT, sent_at=timezone.now(), **fields)


def _unsubscribe_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type="engagement.unsubscribed"))


def test_a_token_names_its_outreach():
    outreach = _sent()
    assert unsubscribe_outreach(token=unsubscribe_token(outreach_id=outreach.pk)) == outreach


def test_the_url_is_under_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://mail.example.org"
    token = unsubscribe_token(outreach_id=7)
    assert unsubscribe_url(outreach_id=7) == f"https://mail.example.org/unsubscribe/{token}/"


def test_the_mailto_carries_the_token_in_its_subject(settings):
    settings.OUTREACH_UNSUBSCRIBE_MAILTO = "leave@example.org"
    token = unsubscribe_token(outreach_id=7)
    assert (
        unsubscribe_mailto(outreach_id=7)
        == f"mailto:leave@example.org?subject=unsubscribe%20{token.replace(':', '%3A')}"
    )


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature changed
        lambda token: token.rpartition(":")[0],  # signature cut off
        lambda token: signing.Signer(salt="another").sign_object({"outreach": 1}),  # our key, not our salt
        lambda token: signing.Signer(key="x" * 50, salt="leads.unsubscribe.v1").sign_object({"outreach": 1}),
        lambda token: "garbage",
        lambda token: "",
    ],
)
def test_a_forged_or_damaged_token_is_refused(forge):
    outreach = _sent()
    with pytest.raises(InvalidUnsubscribeToken):
        unsubscribe_outreach(token=forge(unsubscribe_token(outreach_id=outreach.pk)))


def test_a_token_for_an_outreach_that_does_not_exist_is_refused():
    with pytest.raises(InvalidUnsubscribeToken):
        unsubscribe_outreach(token=unsubscribe_token(outreach_id=999_999))


def test_a_signed_value_of_another_shape_is_refused():
    with pytest.raises(InvalidUnsubscribeToken):
        unsubscribe_outreach(token=signing.Signer(salt="leads.unsubscribe.v1").sign_object(["not", "a", "dict"]))


def test_unsubscribing_suppresses_the_normalised_address():
    outreach = _sent()
    result = unsubscribe_record(outreach=outreach, source="one-click")
    assert result.suppressed
    entry = Suppression.objects.get()
    assert (entry.kind, entry.value, entry.reason, entry.source) == (
        "address",
        "grace@acme.example.com",
        Suppression.Reason.UNSUBSCRIBED,
        "one-click",
    )
    assert suppressions_matching(["grace@acme.example.com"])


def test_unsubscribing_queues_one_engagement_as_the_api_would():
    outreach = _sent()
    assert unsubscribe_record(outreach=outreach, source="one-click").emitted
    [row] = _unsubscribe_events()
    assert (row.topic, row.key) == (OUTREACH_EVENTS, outreach.lead.lightfield_id)
    assert row.payload["event_id"] == f"unsubscribe-{outreach.pk}"
    assert (row.payload["event_type"], row.payload["outreach_id"]) == ("unsubscribed", outreach.pk)
    assert row.payload["payload"] == {"source": "one-click"}


def test_unsubscribing_twice_changes_nothing_the_second_time():
    outreach = _sent()
    unsubscribe_record(outreach=outreach, source="one-click")
    again = unsubscribe_record(outreach=outreach, source="unsubscribe-page")
    assert (again.suppressed, again.emitted) == (False, False)
    assert len(_unsubscribe_events()) == 1
    assert Suppression.objects.get().source == "one-click"


def test_an_outreach_unsubscribed_another_way_first_queues_nothing_more():
    outreach = _sent()
    engagement_apply(event={"event_id": "api-unsub", "event_type": "unsubscribed", "outreach_id": outreach.pk})
    result = unsubscribe_record(outreach=outreach, source="one-click")
    # The feedback stage suppressed the address when it applied the first unsubscribe.
    assert (result.suppressed, result.emitted) == (False, False)
    assert list(Suppression.objects.values_list("reason", "source")) == [("unsubscribed", "feedback")]
    assert _unsubscribe_events() == []


def test_the_queued_engagement_gives_the_variant_exactly_one_failure():
    outreach = _sent()
    unsubscribe_record(outreach=outreach, source="one-click")
    [row] = _unsubscribe_events()
    engagement_apply(event=row.payload)
    engagement_apply(event=row.payload)  # redelivered
    outreach.refresh_from_db()
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.beta, variant.failures) == (1, 2, 1)
    assert (outreach.status, outreach.reward) == (Outreach.Status.UNSUBSCRIBED, Outreach.Reward.FAILURE)
    assert Lead.objects.get(pk=outreach.lead_id).unsubscribed_at is not None


def test_unsubscribing_from_an_erased_outreach_queues_the_engagement_and_suppresses_nothing():
    outreach = _sent(to_email="")
    result = unsubscribe_record(outreach=outreach, source="one-click")
    assert (result.suppressed, result.emitted) == (False, True)
    assert not Suppression.objects.exists()
