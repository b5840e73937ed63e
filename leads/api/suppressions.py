"""`/api/v1/suppressions`: the list of addresses and domains that are never mailed.

List (filters, search, pagination) with a read key; add one or a batch and remove with a write
key. The rules (normalisation, what is refused, an erased entry is never removed) live in
`leads.services.suppression`. Its serializers and filter sit here with the viewset rather than
in views.py and serializers.py, which are at their size already.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from leads.addresses import InvalidAddress
from leads.api.filters import UtcIsoDateTimeFilter
from leads.models import Suppression
from leads.services import suppression as suppression_services
from pipeline_whisperer.exceptions import InvalidInput, PayloadTooLarge
from pipeline_whisperer.models import ApiKey


class SuppressionSerializer(serializers.ModelSerializer):
    value = serializers.CharField(read_only=True, help_text="The normalised address or domain; empty once erased.")

    class Meta:
        model = Suppression
        fields = ["id", "kind", "value", "reason", "source", "note", "created_at"]
        read_only_fields = fields


class SuppressionInputSerializer(serializers.Serializer):
    """The shape of one entry, for the schema; the service checks each entry itself, so that a
    batch's broken entries are reported by index rather than failing the request."""

    value = serializers.CharField(help_text="An address (ada@acme.example) or a domain (acme.example).")
    kind = serializers.ChoiceField(
        choices=Suppression.Kind.choices, required=False, help_text="Inferred when missing: address if it has an @."
    )
    reason = serializers.ChoiceField(choices=suppression_services.ADDABLE_REASONS, default="staff")
    note = serializers.CharField(max_length=500, required=False, allow_blank=True)


class SuppressionBatchInputSerializer(serializers.Serializer):
    entries = SuppressionInputSerializer(many=True)


class SuppressionItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField(allow_null=True)
    value = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    created = serializers.BooleanField(allow_null=True, help_text="False: it was suppressed already.")
    error = serializers.CharField(allow_null=True)


class SuppressionBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    items = SuppressionItemSerializer(many=True)


class SuppressionFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Suppression.Kind.choices)
    reason = django_filters.MultipleChoiceFilter(choices=Suppression.Reason.choices, distinct=False)
    source = django_filters.CharFilter(max_length=100)
    value = django_filters.CharFilter(
        method="filter_value", max_length=254, label="Exact address or domain, in any case (erased entries match)"
    )
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Suppression
        fields = ["kind", "reason", "source", "value", "created_after", "created_before"]

    def filter_value(self, queryset: QuerySet[Suppression], name: str, value: str) -> QuerySet[Suppression]:
        """Matched by hash in its normalised form, as outreach matches it."""
        digests = set()
        for key_of in (suppression_services.address_key, suppression_services.domain_key):
            try:
                digests.add(suppression_services.value_hash(key_of(value)))
            except InvalidAddress:
                continue
        if not digests:
            raise serializers.ValidationError({"value": [f"{value!r} is neither an address nor a domain."]})
        return queryset.filter(value_hash__in=digests)


def _source(request: Request) -> str:
    """Who added it: the API key's name, or the staff member's username."""
    if isinstance(request.auth, ApiKey):
        return f"api:{request.auth.name}"
    return f"api:{request.user.get_username()}"


class SuppressionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    queryset = Suppression.objects.all()
    serializer_class = SuppressionSerializer
    filterset_class = SuppressionFilter
    search_fields = ["value", "note"]
    ordering_fields = ["created_at", "value", "kind", "reason"]
    ordering = ["-created_at", "-id"]

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="SuppressionCreate",
            serializers=[SuppressionInputSerializer, SuppressionBatchInputSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: OpenApiResponse(SuppressionSerializer, description="One entry that was suppressed already."),
            201: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="SuppressionCreated",
                    serializers=[SuppressionSerializer, SuppressionBatchResultSerializer],
                    resource_type_field_name=None,
                ),
                description="One entry added (the entry), or a batch (counts and one item per entry).",
            ),
        },
        description="One entry `{value, kind?, reason?, note?}`, or a batch `{entries: [...]}` of up to "
        "INGEST_MAX_BATCH. Values are normalised (lower case, IDN domains in Unicode). In a batch each valid "
        "entry is kept and each invalid one reported by index; 400 if none is valid.",
    )
    def create(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, dict) and "entries" in data:
            return self._create_batch(data["entries"], source=_source(request))
        (result,) = suppression_services.suppression_add_many(entries=[data], source=_source(request))
        if result.error:
            raise InvalidInput(
                f"The request is not valid: {result.error}", errors={result.field: [result.error.partition(": ")[2]]}
            )
        assert result.id is not None  # noqa: S101  # nosec B101  # narrowing: an entry without an error has one
        entry = Suppression.objects.get(pk=result.id)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(SuppressionSerializer(entry).data, status=code)

    def _create_batch(self, entries: Any, *, source: str) -> Response:
        if not isinstance(entries, list) or not entries:
            raise InvalidInput("entries must be a non-empty list of entries.")
        if len(entries) > settings.INGEST_MAX_BATCH:
            raise PayloadTooLarge(f"A batch may hold at most {settings.INGEST_MAX_BATCH} entries (got {len(entries)}).")
        results = suppression_services.suppression_add_many(entries=entries, source=source)
        errors = {str(result.index): [result.error] for result in results if result.error}
        if len(errors) == len(results):
            raise InvalidInput("No entry in the request is valid.", errors=errors)
        body = {"accepted": len(results) - len(errors), "rejected": len(errors), "items": results}
        return Response(SuppressionBatchResultSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="An erased person's entry stays.")})
    def destroy(self, request: Request, pk: str) -> Response:
        """Lift a suppression. An erased person's entry is never removed (409)."""
        suppression_services.suppression_remove(suppression=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
