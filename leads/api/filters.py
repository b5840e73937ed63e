"""Query-string filters for the list endpoints; a bad value is a 400 that names it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.http import QueryDict
from django.utils.functional import cached_property
from django_filters.fields import IsoDateTimeField

from leads.models import Lead, Outreach, Persona


class _LeadFilterForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        # Errors go on a field, so the 400's `errors` names it rather than "__all__".
        cleaned = super().clean() or {}
        low, high = cleaned.get("min_score"), cleaned.get("max_score")
        if low is not None and high is not None and low > high:
            self.add_error("min_score", "min_score must not be greater than max_score.")
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and after > before:
            self.add_error("created_after", "created_after must not be later than created_before.")
        return cleaned


class _UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601 allows UTC offsets up to 23:59 and PostgreSQL refuses any beyond 15:59, so the
    instant is compared in UTC; one outside years 1-9999 in UTC is invalid (400), not a 500."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        try:
            return parsed.astimezone(UTC) if parsed is not None else None
        except OverflowError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class _IdField(forms.IntegerField):
    """A row id: ASCII digits only. Django's IntegerField takes "3.0" and django-filter's
    NumberFilter takes "3.5" (and matched id 3); a fraction, a sign or an exponent is no id."""

    default_error_messages = {"invalid": "Enter a whole number (digits only)."}

    def to_python(self, value: Any) -> int | None:
        if value not in self.empty_values and not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class IdFilter(django_filters.NumberFilter):
    """An id from 1 to the largest bigint; a bad one is a 400, never a row it is rounded to."""

    field_class = _IdField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class LeanFilterSet(django_filters.FilterSet):
    """A FilterSet whose filters and form classes are built once per class, not once per request,
    and that validates and applies only the filters the query names.

    django-filter deep-copies every filter and builds a new form class (labels and form fields
    included) for each request, then cleans every field, which cost a list page about as much as
    its query. Our filters are only read while filtering (none has a `method`, the one thing that
    needs its own parent filterset), so every instance shares one set, built just as django-filter
    builds them. A filter the query leaves out cleans to nothing, so it is not in the form that
    validates (`form`, which the browsable API shows, still has them all); each filter reads one
    query parameter of its own name (no multi-part widget), so "left out" is plain to see.
    """

    def __init__(self, data: Any = None, queryset: Any = None, *, request: Any = None, prefix: Any = None) -> None:
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = self._meta.model._default_manager.all() if queryset is None else queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = self._shared()[0]

    def get_form_class(self) -> type[forms.Form]:
        return self._shared()[1]

    def is_valid(self) -> bool:
        return self.is_bound and self._asked.is_valid()

    @property
    def errors(self) -> Any:
        return self._asked.errors

    def filter_queryset(self, queryset: Any) -> Any:
        for name, value in self._asked.cleaned_data.items():
            queryset = self.filters[name].filter(queryset, value)
        return queryset

    @cached_property
    def _asked(self) -> forms.Form:
        prefix = f"{self.form_prefix}-" if self.form_prefix else ""
        asked = frozenset(name for name in self.filters if prefix + name in self.data)
        forms_by_names = self._shared()[2]
        if asked not in forms_by_names:  # at most one per combination of the filters
            fields = {name: self.get_form_class().base_fields[name] for name in asked}
            forms_by_names[asked] = type(f"{type(self).__name__}Form", (self._meta.form,), fields)
        return forms_by_names[asked](self.data, prefix=self.form_prefix)

    @classmethod
    def _shared(cls) -> tuple[dict[str, Any], type[forms.Form], dict[frozenset[str], type[forms.Form]]]:
        """The filters, the whole form class, and the validating form class per set of filters asked."""
        shared = cls.__dict__.get("_shared_filters_and_forms")
        if shared is None:  # a race builds it twice, harmlessly
            prototype = django_filters.FilterSet.__new__(cls)
            django_filters.FilterSet.__init__(prototype, queryset=cls._meta.model._default_manager.none())
            for name, filter_ in prototype.filters.items():
                if filter_.method is not None or isinstance(filter_.field.widget, forms.MultiWidget):
                    raise ImproperlyConfigured(f"{cls.__name__}.{name}: a method or a multi-part widget")
            shared = (prototype.filters, django_filters.FilterSet.get_form_class(prototype), {})
            cls._shared_filters_and_forms = shared
        return shared


class LeadFilter(LeanFilterSet):
    # distinct=False: these filter the lead's own columns (no joins), and DISTINCT over every column
    # would make the count and the page far slower on a large table.
    status = django_filters.MultipleChoiceFilter(choices=Lead.Status.choices, distinct=False)
    persona = django_filters.MultipleChoiceFilter(choices=Persona.choices, distinct=False)
    min_score = django_filters.NumberFilter(field_name="score", lookup_expr="gte", min_value=0, max_value=1)
    max_score = django_filters.NumberFilter(field_name="score", lookup_expr="lte", min_value=0, max_value=1)
    industry = django_filters.CharFilter(field_name="company_industry", lookup_expr="iexact", max_length=100)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Lead
        fields = ["status", "persona", "min_score", "max_score", "industry", "created_after", "created_before"]
        form = _LeadFilterForm


class OutreachFilter(LeanFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Outreach.Status.choices, distinct=False)
    lead = IdFilter(field_name="lead_id")
    lightfield_id = django_filters.CharFilter(field_name="lead__lightfield_id", max_length=64)
    variant = IdFilter(field_name="variant_id")
    experiment = IdFilter(field_name="variant__experiment_id")
    sent_after = UtcIsoDateTimeFilter(field_name="sent_at", lookup_expr="gte")
    sent_before = UtcIsoDateTimeFilter(field_name="sent_at", lookup_expr="lt")

    class Meta:
        model = Outreach
        fields = ["status", "lead", "lightfield_id", "variant", "experiment", "sent_after", "sent_before"]
