"""The request bodies that are one object or a list of them, as the OpenAPI schema shows them.

These serializers only document: the ingest body is read by `leads.lightfield.parse_event` (the
one place its rules live), the engagement body by `EngagementInputSerializer`. Every field of the
Lightfield event but `lightfield_id` and `company.name` may be missing or null, and unknown
fields are accepted (kept in the lead's raw payload), so no component forbids other properties.
"""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from leads.api.serializers import EngagementInputSerializer
from leads.lightfield import LIGHTFIELD_ID
from leads.models import BudgetRange, CompanySize


def _text(help_text: str = "") -> serializers.CharField:
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text=help_text)


class LightfieldCompanySerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Required; kept up to 255 characters.")
    website = _text()
    industry = _text()
    size = serializers.ChoiceField(choices=CompanySize.choices, required=False, allow_null=True, allow_blank=True)
    description = _text("Kept as sent, line breaks included.")


class LightfieldContactSerializer(serializers.Serializer):
    name = _text()
    email = serializers.EmailField(
        required=False, allow_null=True, allow_blank=True, help_text="Without one the lead is never contacted."
    )
    title = _text()
    linkedin = _text()
    time_zone = _text("An IANA time zone name (Europe/Paris); the send window applies in it.")


class LightfieldSourceSerializer(serializers.Serializer):
    channel = _text()
    campaign = _text()
    referrer = _text()


class LightfieldMetadataSerializer(serializers.Serializer):
    tech_stack = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False, allow_null=True)
    pain_points = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False, allow_null=True)
    budget_range = serializers.ChoiceField(
        choices=BudgetRange.choices, required=False, allow_null=True, allow_blank=True
    )
    timeline = _text()


class LightfieldEventSerializer(serializers.Serializer):
    """A Lightfield `lead.created` event, unchanged from the CRM."""

    event_type = _text("`lead.created`.")
    timestamp = serializers.DateTimeField(required=False, allow_null=True, help_text="ISO 8601; UTC if no offset.")
    lightfield_id = serializers.RegexField(
        f"^{LIGHTFIELD_ID.pattern}$", help_text="The CRM's id of the lead; a repeated one updates that lead."
    )
    company = LightfieldCompanySerializer()
    contact = LightfieldContactSerializer(required=False, allow_null=True)
    # The metaclass takes declared fields off the class, so this does not shadow Field.source.
    source = LightfieldSourceSerializer(required=False, allow_null=True)  # type: ignore[assignment]
    metadata = LightfieldMetadataSerializer(required=False, allow_null=True)


def one_or_many(component_name: str, item: type[serializers.Serializer]) -> PolymorphicProxySerializer:
    """`oneOf` the item and a list of items, for a body that takes either."""
    return PolymorphicProxySerializer(
        component_name=component_name,
        serializers=[item, item(many=True)],
        resource_type_field_name=None,
        many=False,
    )


INGEST_BODY = one_or_many("LightfieldEventOrBatch", LightfieldEventSerializer)
ENGAGEMENT_BODY = one_or_many("EngagementInputOrBatch", EngagementInputSerializer)
