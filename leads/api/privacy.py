"""Privacy requests over the API: POST /api/v1/privacy/export and /api/v1/privacy/erase.

Both are POSTs with the address in the body (never in a URL, which proxies and access logs
keep), so both need a write key or a staff session. A module of its own beside views.py: its
serializers describe nothing else.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from leads.api.serializers import validated
from leads.services.privacy import privacy_erase, privacy_export
from pipeline_whisperer.models import ApiKey


class PrivacySubjectSerializer(serializers.Serializer):
    # A plain string: the service decides what an address is, the same way for every door.
    email = serializers.CharField(max_length=320, help_text="The person's email address, in any case.")


class ErasureReportSerializer(serializers.Serializer):
    subject_hash = serializers.CharField(help_text="SHA-256 of the normalised address, as in the audit row.")
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Rows changed, per table.")
    request_id = serializers.IntegerField(help_text="The PrivacyRequest audit row.")


def requester(request: Request) -> str:
    """Who asked, for the audit row: the API key's name or the staff member's username."""
    if isinstance(request.auth, ApiKey):
        return f"api:{request.auth.name}"[:150]
    return f"staff:{request.user.get_username()}"[:150]


class PrivacyViewSet(viewsets.ViewSet):
    """Export or erase everything held about one person."""

    @extend_schema(
        request=PrivacySubjectSerializer,
        responses={200: OpenApiTypes.OBJECT},
        description="Everything held about the person at `email` (leads, outreach, engagement, suppression, outbox "
        "rows and dead letters) as one JSON document. Recorded as an export request.",
    )
    @action(detail=False, methods=["post"])
    def export(self, request: Request) -> Response:
        data = validated(PrivacySubjectSerializer, request.data)
        return Response(privacy_export(email=data["email"], requested_by=requester(request)))

    @extend_schema(
        request=PrivacySubjectSerializer,
        responses={200: ErasureReportSerializer},
        description="Erase the person's personal data everywhere it is held, keep the variants' counts, and keep the "
        "address suppressed by its hash only. Cannot be undone. An address that matches nothing is still suppressed.",
    )
    @action(detail=False, methods=["post"])
    def erase(self, request: Request) -> Response:
        data = validated(PrivacySubjectSerializer, request.data)
        report = privacy_erase(email=data["email"], requested_by=requester(request))
        return Response(ErasureReportSerializer(report).data)
