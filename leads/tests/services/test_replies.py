"""Matching inbound mail to outreach, and what is kept of it (leads.services.replies)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from leads.models import OutboxEvent, UnmatchedProviderEvent
from leads.services.redaction import ERASED
from leads.services.replies import (
    MAX_REPLY_CHARS,
    MAX_THREAD_IDS,
    InboundMail,
    InboundOutcome,
    outreach_for_thread,
    reply_event_id,
    reply_receive,
    reply_text,
    thread_ids,
)
from leads.tests.webhooks.inbound_payloads import sent_outreach

MAIL = InboundMail(
    provider="postmark",
    provider_event_id="22c74902-a0c1-4511-804f-341342852c90",
    message_id="<CAEPk3R+4Zr@mail.acme.example>",
    in_reply_to="",
    references="",
    sender="grace@acme.example",
    recipients=("outreach@whisperer.example",),
    subject="Re: Hello",
    text="Interested.",
)


def test_thread_ids_are_nearest_first_without_brackets_each_once():
    assert thread_ids("<b@x>", "<a@x>\r\n <c@x> <b@x>") == ["b@x", "c@x", "a@x"]


def test_only_the_nearest_thread_ids_are_looked_up():
    references = " ".join(f"<m{n}@x>" for n in range(MAX_THREAD_IDS + 20))
    ids = thread_ids("", references)
    assert (len(ids), ids[0]) == (MAX_THREAD_IDS, f"m{MAX_THREAD_IDS + 19}@x")


def test_a_thread_id_without_brackets_is_read_as_given():
    assert thread_ids("0100018c-ses-id", "") == ["0100018c-ses-id"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("stored", "replied_to"),
    [
        ({"message_id": "<ours.1@whisperer.example>"}, "<ours.1@whisperer.example>"),
        ({"provider_message_id": "<20261201.ABC@mg.whisperer.example>"}, "<20261201.ABC@mg.whisperer.example>"),
        ({"provider_message_id": "0100018c1f1b2a3b-aaaa-000000"}, "<0100018c1f1b2a3b-aaaa-000000@email.amazonses.com>"),
        (
            {"provider_message_id": "6f1c2f5e-0000-4a4a-9b9b-1234567890ab"},
            "<6f1c2f5e-0000-4a4a-9b9b-1234567890ab@mtasv.net>",
        ),
    ],
    ids=["our-message-id", "mailgun-bracketed", "ses-rewritten", "postmark-rewritten"],
)
def test_a_reply_threads_to_its_outreach_by_our_id_or_the_providers(stored, replied_to, django_assert_num_queries):
    outreach = sent_outreach(**stored)
    with django_assert_num_queries(1):
        assert outreach_for_thread(thread_ids(replied_to, "")) == outreach


@pytest.mark.django_db
def test_the_nearest_thread_id_wins_when_several_name_outreach():
    older, newer = sent_outreach(), sent_outreach()
    assert outreach_for_thread(thread_ids(newer.message_id or "", f"{older.message_id}")) == newer


def test_the_quoted_original_is_left_out_of_the_reply_text():
    text = "Thursday works.\n> quoted line\nThanks\n\nOn Mon, 30 Nov 2026 at 09:00, Sales\n<s@w.example> wrote:\n> Hi"
    assert reply_text(text) == "Thursday works.\nThanks"


def test_the_reply_text_is_cut_to_its_cap():
    assert len(reply_text("x" * (MAX_REPLY_CHARS + 50))) == MAX_REPLY_CHARS


def test_the_event_id_is_stable_per_reply_and_fits_the_applied_event_column():
    assert reply_event_id(MAIL) == reply_event_id(replace(MAIL, provider_event_id="another-delivery"))
    assert reply_event_id(MAIL) != reply_event_id(replace(MAIL, message_id="<other@mail.acme.example>"))
    assert len(reply_event_id(replace(MAIL, provider="p" * 40))) <= 100


@pytest.mark.django_db
def test_a_reply_to_an_erased_persons_outreach_keeps_nothing_of_the_reply():
    outreach = sent_outreach(to_email=ERASED)

    outcome = reply_receive(mail=replace(MAIL, in_reply_to=outreach.message_id or ""))

    assert outcome is InboundOutcome.UNMATCHED
    assert not OutboxEvent.objects.exists()
    assert UnmatchedProviderEvent.objects.get().metadata == {"thread_ids": [outreach.message_id.strip("<>")]}
