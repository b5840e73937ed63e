"""Every id filter of every list endpoint refuses what is not a whole id: `?lead=3.5` is a 400
naming the filter, never lead 3. The filters are found by walking the API's routes, so a new one
is held to the same rule."""

from __future__ import annotations

from typing import Any, cast

import pytest
from django.db import models
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import get_model_field

from leads.api.urls import router
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

ID_FIELDS = (models.AutoField, models.BigAutoField, models.ForeignKey, models.OneToOneField)


def _id_filters() -> list[tuple[str, str]]:
    """(list URL, query parameter) for each filter on a primary or foreign key."""
    found = []
    for _prefix, viewset, basename in router.registry:
        view = cast(Any, viewset)(action="list", request=None, format_kwarg=None)  # View takes initkwargs
        if not (getattr(view, "filterset_class", None) or getattr(view, "filterset_fields", None)):
            continue
        queryset = view.get_queryset()
        filterset = DjangoFilterBackend().get_filterset_class(view, queryset)
        for name, query_filter in filterset.base_filters.items():
            field = get_model_field(queryset.model, query_filter.field_name)
            if isinstance(field, ID_FIELDS):
                found.append((reverse(f"{basename}-list"), name))
    return found


ID_FILTERS = _id_filters()


def test_the_walk_finds_the_id_filters():
    assert {("/api/v1/outreach", "lead"), ("/api/v1/engagements", "outreach")} <= set(ID_FILTERS)


@pytest.mark.parametrize(("url", "name"), ID_FILTERS)
@pytest.mark.parametrize("value", ["3.5", "3.0", "1e3", "-3", "0", "abc"])
def test_an_id_filter_refuses_a_value_that_is_not_a_whole_id(read_client, url, name, value):
    assert_problem(read_client.get(url, {name: value}), 400, [name])
