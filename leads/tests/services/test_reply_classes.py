"""Classifying replies by the rules (leads.services.reply_classes); the model is in the webhook tests."""

from __future__ import annotations

from typing import Any

import pytest

from leads.services.reply_classes import (
    ReplyClass,
    is_auto_reply,
    parse_class,
    replies_classify,
    reply_class_label,
    reply_classify_by_rules,
)
from leads.tests.factories import EngagementEventFactory
from pipeline_whisperer.exceptions import LlmError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes, I'm interested. Can we schedule a call?", ReplyClass.INTERESTED),
        ("Sounds great, send me more about pricing.", ReplyClass.INTERESTED),
        ("Not interested, thanks.", ReplyClass.NOT_INTERESTED),
        ("We don\u2019t need this, we already use a vendor.", ReplyClass.NOT_INTERESTED),
        ("I am out of the office until Monday 7 December.", ReplyClass.OUT_OF_OFFICE),
        ("Please remove me from your list.", ReplyClass.UNSUBSCRIBE_REQUEST),
        ("UNSUBSCRIBE", ReplyClass.UNSUBSCRIBE_REQUEST),
        ("Who gave you my address?", ReplyClass.OTHER),
    ],
)
def test_the_rules_classify_a_reply_by_its_phrases(text, expected):
    assert reply_classify_by_rules(subject="Re: Hello", text=text) == expected


def test_a_word_of_our_own_footer_in_a_longer_reply_is_not_an_unsubscribe_request():
    assert reply_classify_by_rules(subject="Re: Hello", text="Where is the unsubscribe link?") == ReplyClass.OTHER


@pytest.mark.parametrize(
    ("headers", "subject", "expected"),
    [
        ([("Auto-Submitted", "auto-replied")], "Re: Hello", True),
        ([("Auto-Submitted", "no")], "Re: Hello", False),
        ([("X-Autoreply", "yes")], "Re: Hello", True),
        ([("Precedence", "auto_reply")], "Re: Hello", True),
        ([("Precedence", "list")], "Re: Hello", False),
        ([], "Automatic reply: Hello", True),
        ([], "Re: Hello", False),
    ],
)
def test_auto_reply_headers_and_subjects_are_recognised(headers, subject, expected):
    assert is_auto_reply(headers, subject=subject) is expected


def test_an_auto_reply_is_out_of_office_whatever_it_says():
    assert reply_classify_by_rules(subject="Re", text="Interested!", auto_reply=True) == ReplyClass.OUT_OF_OFFICE


@pytest.mark.parametrize("content", [None, "not json", '["interested"]', '{"classification": "maybe"}'])
def test_an_answer_that_breaks_the_schema_is_an_llm_error(content):
    with pytest.raises(LlmError):
        parse_class(content)


def test_staff_read_the_class_and_who_gave_it():
    assert reply_class_label({"classification": "interested", "classified_by": "model"}) == "Interested (model)"
    assert reply_class_label({}) == ""


@pytest.mark.django_db
def test_a_reply_already_applied_is_not_classified_again(django_assert_num_queries):
    applied = EngagementEventFactory(event_id="postmark:reply:1", event_type="replied")
    events: list[dict[str, Any]] = [
        {"event_id": applied.event_id, "event_type": "replied", "payload": {"text": "Interested"}},
        {"event_id": "postmark:reply:2", "event_type": "replied", "payload": {"text": "Interested"}},
        {"event_id": "api-1", "event_type": "opened", "payload": {}},
        {"event_id": "api-2", "event_type": "replied", "payload": {"via": "crm"}},  # nothing to classify
    ]
    with django_assert_num_queries(1):
        replies_classify(events)
    assert [event["payload"].get("classification") for event in events] == [None, "interested", None, None]
