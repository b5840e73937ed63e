"""An email provider's API error is an outage (wait) or the message's own fault (fail) by the
status of the provider's answer, as anymail carries it for requests-based and boto3 backends."""

from __future__ import annotations

import pytest
import requests
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused, AnymailRequestsAPIError

from pipeline_whisperer.outages import dependency_down, provider_status


def _answered(status: int) -> AnymailRequestsAPIError:
    response = requests.Response()
    response.status_code, response.reason, response._content = status, "reason", b"{}"
    return AnymailRequestsAPIError(response=response, esp_name="Postmark")


def _unanswered(cause: requests.RequestException) -> AnymailRequestsAPIError:
    """As anymail raises it for a post that got no answer: the requests error as its cause."""
    try:
        try:
            raise cause
        except requests.RequestException as error:
            raise AnymailRequestsAPIError("Error posting to the provider:", esp_name="Postmark") from error
    except AnymailRequestsAPIError as raised:
        return raised


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_server_error_or_throttling_is_an_outage(status):
    assert dependency_down(_answered(status))


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_client_error_is_the_messages_own(status):
    assert not dependency_down(_answered(status))


@pytest.mark.parametrize("cause", [requests.ConnectionError("refused"), requests.ReadTimeout("slow")])
def test_no_answer_at_all_is_an_outage(cause):
    assert provider_status(_unanswered(cause)) is None
    assert dependency_down(_unanswered(cause))


def test_amazon_ses_carries_the_status_in_the_parsed_error_response():
    throttled = AnymailAPIError("TooManyRequests", response={"ResponseMetadata": {"HTTPStatusCode": 429}})
    rejected = AnymailAPIError("MessageRejected", response={"ResponseMetadata": {"HTTPStatusCode": 400}})

    assert (provider_status(throttled), provider_status(rejected)) == (429, 400)
    assert dependency_down(throttled) and not dependency_down(rejected)


def test_refused_recipients_are_no_outage():
    assert not dependency_down(AnymailRecipientsRefused(esp_name="Postmark"))
