"""Logging and Sentry settings: a bad value stops start-up with one line naming it."""

from pipeline_whisperer.tests.test_settings import PRODUCTION_SECRET, SENDER_IDENTITY, _assert_one_line_naming, _manage


def test_unknown_log_format_stops_check_with_one_line():
    result = _manage("check", DJANGO_SECRET_KEY=PRODUCTION_SECRET, LOG_FORMAT="xml", **SENDER_IDENTITY)
    _assert_one_line_naming(result, "LOG_FORMAT")


def test_sentry_sample_rate_above_one_stops_check_with_one_line():
    result = _manage("check", DJANGO_SECRET_KEY=PRODUCTION_SECRET, SENTRY_SAMPLE_RATE="1.5", **SENDER_IDENTITY)
    _assert_one_line_naming(result, "SENTRY_SAMPLE_RATE")
