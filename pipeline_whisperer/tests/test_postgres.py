"""Timestamps read from PostgreSQL by psycopg's C loader: the same aware UTC datetimes as
Django's own loader gives, whatever offset PostgreSQL was given them in."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from psycopg.pq import Format

from pipeline_whisperer.postgres import UtcTimestamptzLoader

pytestmark = pytest.mark.django_db


def test_every_connection_reads_timestamps_with_the_fast_loader():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(
        connection.connection.adapters.types["timestamptz"].oid, Format.TEXT
    )
    assert loader is UtcTimestamptzLoader


def test_a_timestamp_given_in_another_offset_is_read_in_utc():
    with connection.cursor() as cursor:
        cursor.execute("SELECT timestamptz '2026-01-01 10:00:00.000120+05', timestamptz '0001-01-01 00:00:00+00'")
        shifted, earliest = cursor.fetchone()
    assert shifted == datetime.datetime(2026, 1, 1, 5, 0, 0, 120, tzinfo=datetime.UTC)
    assert shifted.tzinfo is datetime.UTC
    assert earliest == datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)


def test_a_model_reads_back_the_instant_it_stored():
    stored = datetime.datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=datetime.timezone(datetime.timedelta(hours=-7)))
    user = get_user_model().objects.create(username="timestamps", last_login=stored)
    read = get_user_model().objects.values_list("last_login", flat=True).get(pk=user.pk)
    assert read == stored
    assert read.tzinfo is datetime.UTC
