"""Fixtures for the staff console tests: a plain (non-staff) user's client and a seeded world."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> None:
    """The fixtures create users; a slow hasher would dominate these tests' run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def plain_client(django_user_model: type[User]) -> Client:
    """Logged in as an active user who is not staff."""
    user = django_user_model.objects.create_user(username="plain", password="not-staff-0")
    client = Client()
    client.force_login(user)
    return client
