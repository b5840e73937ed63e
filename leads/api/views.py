"""The REST API's viewsets: thin doors that validate, call one service or selector, and shape
the answer. Viewsets are composed from the mixins they need, so no verb exists by accident."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from leads import caching, selectors
from leads.api import request_bodies
from leads.api import serializers as s
from leads.api.filters import LeadFilter, OutreachFilter
from leads.api.privacy import requester
from leads.models import Experiment, Lead, OutreachTemplate, Variant
from leads.services import experiments as experiment_services
from leads.services import feedback as feedback_services
from leads.services import ingest as ingest_services
from leads.services import leads as lead_services
from leads.services import outreach as outreach_services
from leads.services import templates as template_services
from pipeline_whisperer.api import ItemwiseJSONParser, KeysetPagination, plain_data_response
from pipeline_whisperer.exceptions import InvalidInput, PayloadTooLarge


class _LeanListMixin:
    """A large collection's list: paged by cursor (no count), its rows read as `.values()` already
    shaped as the answer, so no model instance nor serializer field is built per row (the list
    serializer still describes the rows in the schema)."""

    pagination_class: type[BasePagination] | None = KeysetPagination
    list_columns: tuple[str, ...]
    list_expressions: dict[str, Any] = {}

    def list(self, request: Request) -> Response:
        view: Any = self  # a GenericViewSet: the mixin only adds a list
        rows = view.filter_queryset(view.get_queryset()).values(*self.list_columns, **self.list_expressions)
        return view.get_paginated_response(view.paginate_queryset(rows))


class LeadViewSet(_LeanListMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    list_columns = s.LEAD_LIST_COLUMNS
    filterset_class = LeadFilter
    search_fields = ["company_name", "contact_name", "contact_email", "lightfield_id"]
    ordering_fields = ["created_at", "updated_at", "score", "company_name", "status"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self) -> QuerySet[Lead]:
        return selectors.lead_list() if self.action == "list" else Lead.objects.all()

    def get_serializer_class(self) -> type[s.serializers.Serializer]:
        return s.LeadListSerializer if self.action == "list" else s.LeadDetailSerializer

    # A lead is read as its columns, already shaped as LeadDetailSerializer's answer (every field a
    # plain read-only column): building that serializer's fields cost a third of the request.
    def retrieve(self, request: Request, pk: str) -> Response:
        # DRF's get_object_or_404: an id that is no number is a 404, as in get_object().
        return Response(generics.get_object_or_404(Lead.objects.values(*s.LEAD_DETAIL_COLUMNS), pk=pk))

    @extend_schema(request=s.LeadCreateSerializer, responses={201: s.LeadDetailSerializer})
    def create(self, request: Request) -> Response:
        data = s.validated(s.LeadCreateSerializer, request.data)
        lead = lead_services.lead_create(**data)
        return Response(s.LeadDetailSerializer(lead).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.LeadWriteSerializer, responses=s.LeadDetailSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        lead = self.get_object()
        changes = s.validated(s.LeadWriteSerializer, request.data, partial=True)
        return Response(s.LeadDetailSerializer(lead_services.lead_update(lead=lead, **changes)).data)

    @extend_schema(request=s.LeadSnoozeSerializer, responses=s.LeadDetailSerializer)
    @action(detail=True, methods=["post"])
    def snooze(self, request: Request, pk: str) -> Response:
        data = s.validated(s.LeadSnoozeSerializer, request.data)
        lead = lead_services.lead_snooze(lead=self.get_object(), until=data.get("until"))
        return Response(s.LeadDetailSerializer(lead).data)

    @extend_schema(request=None, responses=s.LeadDetailSerializer)
    @action(detail=True, methods=["post"])
    def unsnooze(self, request: Request, pk: str) -> Response:
        lead = lead_services.lead_unsnooze(lead=self.get_object())
        return Response(s.LeadDetailSerializer(lead).data)

    @extend_schema(request=None, responses={202: s.LeadDetailSerializer})
    @action(detail=True, methods=["post"])
    def rescore(self, request: Request, pk: str) -> Response:
        """Score the lead again with the configured scorer; outreach follows if it now qualifies."""
        lead = lead_services.lead_rescore(lead=self.get_object())
        return Response(s.LeadDetailSerializer(lead).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: s.LeadDetailSerializer})
    @action(detail=True, methods=["post"], url_path="force-outreach")
    def force_outreach(self, request: Request, pk: str) -> Response:
        """Queue outreach whatever the score or an earlier message; never to an unsubscribed,
        bounced, snoozed or address-less lead (409)."""
        lead = outreach_services.outreach_force(lead=self.get_object())
        return Response(s.LeadDetailSerializer(lead).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=request_bodies.INGEST_BODY,
        responses={202: s.IngestResultSerializer},
        description="One Lightfield lead.created event, or a list of up to INGEST_MAX_BATCH. Each valid event is "
        "stored and queued for scoring; invalid ones are reported by index. 400 if none is valid.",
    )
    @action(
        detail=False,
        methods=["post"],
        filter_backends=[],
        pagination_class=None,
        parser_classes=[ItemwiseJSONParser],  # an event holding NaN is refused alone (parse_event)
    )
    def ingest(self, request: Request) -> Response:
        events = _one_or_many(request.data)
        items = ingest_services.lead_ingest_batch(events=events)
        refused = {str(item.index): [item.error] for item in items if item.error}
        if len(refused) == len(items):
            raise InvalidInput("No event in the request is valid.", errors=refused)
        return Response(s.batch_answer(items, s.IngestResultSerializer), status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.LeadStatsSerializer)
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def stats(self, request: Request) -> HttpResponseBase:
        return plain_data_response(request, caching.lead_stats_cached(present=s.lead_stats_answer))

    @extend_schema(responses=s.LeadDetailSerializer)
    @action(
        detail=False,
        methods=["get"],
        url_path=r"lightfield/(?P<lightfield_id>[A-Za-z0-9_.:-]{1,64})",
        filter_backends=[],
        pagination_class=None,
    )
    def lightfield(self, request: Request, lightfield_id: str) -> Response:
        return Response(get_object_or_404(Lead.objects.values(*s.LEAD_DETAIL_COLUMNS), lightfield_id=lightfield_id))


def _flatten(errors: Any) -> str:
    return "; ".join(f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in errors.items())


def _one_or_many(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and data:
        return data
    raise InvalidInput("The body must be one JSON object or a non-empty list of them.")


class EngagementViewSet(_LeanListMixin, viewsets.GenericViewSet):
    """Engagement with outreach: GET lists what was applied; POST queues new events."""

    list_columns = s.ENGAGEMENT_COLUMNS

    serializer_class = s.EngagementEventSerializer
    filterset_fields = ["event_type", "outreach"]
    ordering_fields = ["occurred_at", "received_at"]
    ordering = ["-occurred_at", "-id"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.engagement_list()

    @extend_schema(
        request=request_bodies.ENGAGEMENT_BODY,
        responses={202: s.EngagementResultSerializer},
        description="A list of engagement events (a single object is taken too): delivered, opened, clicked, replied, "
        "converted, bounced, deferred, complained or unsubscribed, each naming its outreach by outreach_id or "
        "message_id. A bounce carries bounce_type `hard` or `soft`; without one it is taken as hard. A hard bounce, "
        "a complaint and an unsubscribe suppress the address and count as the outreach's failure; a soft bounce "
        "retries the mail later and suppresses nothing; a deferral is recorded only. A repeated event_id changes "
        "nothing.",
    )
    def create(self, request: Request) -> Response:
        events = _one_or_many(request.data)
        if len(events) > settings.INGEST_MAX_BATCH:
            raise PayloadTooLarge(f"A batch may hold at most {settings.INGEST_MAX_BATCH} events (got {len(events)}).")
        valid, refused = {}, []
        for index, event in enumerate(events):
            serializer = s.EngagementInputSerializer(data=event)
            if serializer.is_valid():
                valid[index] = serializer.validated_data
            else:
                refused.append(feedback_services.EngagementItem(index=index, error=_flatten(serializer.errors)))
        queued = feedback_services.engagement_submit(events=list(valid.values())) if valid else []
        items = sorted(
            refused + [replace(item, index=index) for index, item in zip(valid, queued, strict=True)],
            key=lambda item: item.index,
        )
        # Unknown outreach counts as refused too: a batch that queued nothing is not "accepted".
        errors = {str(item.index): [item.error] for item in items if item.error}
        if len(errors) == len(items):
            raise InvalidInput("No event in the request is valid.", errors=errors)
        return Response(s.batch_answer(items, s.EngagementResultSerializer), status=status.HTTP_202_ACCEPTED)


class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = OutreachTemplate.objects.all()
    serializer_class = s.TemplateSerializer
    search_fields = ["name", "subject"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name"]

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        template = template_services.template_create(**serializer.validated_data)
        return Response(self.get_serializer(template).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        template = self.get_object()
        serializer = self.get_serializer(template, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        template = template_services.template_update(template=template, **serializer.validated_data)
        return Response(self.get_serializer(template).data)

    def destroy(self, request: Request, pk: str) -> Response:
        template_services.template_delete(template=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.TemplatePreviewSerializer, responses=s.RenderedMessageSerializer)
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str) -> Response:
        template = self.get_object()
        data = s.validated(s.TemplatePreviewSerializer, request.data)
        lead = get_object_or_404(Lead, pk=data["lead_id"])
        rendered = template_services.template_render(
            subject=template.subject, body=template.body, html_body=template.html_body, lead=lead
        )
        return Response(s.RenderedMessageSerializer(rendered).data)

    @extend_schema(
        request=s.TemplateDraftPreviewSerializer,
        responses={200: s.RenderedMessageSerializer, 404: None},
        operation_id="v1_templates_preview_draft",
    )
    @action(detail=False, methods=["post"], url_path="preview")
    def preview_draft(self, request: Request) -> Response:
        """Render an unsaved subject, body and HTML body against a lead, to check them before saving."""
        data = s.validated(s.TemplateDraftPreviewSerializer, request.data)
        lead = get_object_or_404(Lead, pk=data["lead_id"])
        rendered = template_services.template_render(
            subject=data["subject"], body=data["body"], html_body=data["html_body"], lead=lead
        )
        return Response(s.RenderedMessageSerializer(rendered).data)


class _PosteriorContextMixin:
    """Variants are answered with their posterior summaries, computed once per response."""

    def posterior_context(self, variants: list[Variant]) -> dict[str, Any]:
        return {"posteriors": caching.experiment_posteriors_cached(variants)}

    def experiments_posterior_context(self, experiments: list[Experiment]) -> dict[str, Any]:
        """The posteriors of every variant shown, in one cache read (each experiment's variants
        still compete only with each other for probability_best); each experiment's decision
        reads its own variants' posteriors."""
        variants = {experiment.pk: list(experiment.variants.all()) for experiment in experiments}
        posteriors = caching.experiment_posteriors_cached([v for own in variants.values() for v in own])
        decisions = {
            experiment.pk: selectors.experiment_decision(experiment, variants[experiment.pk], posteriors)
            for experiment in experiments
        }
        return {"posteriors": posteriors, "decisions": decisions}


def _url(request: Request) -> tuple[str, ...]:
    return (request.build_absolute_uri(),)


class ExperimentViewSet(_PosteriorContextMixin, viewsets.GenericViewSet):
    serializer_class = s.ExperimentSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def get_queryset(self) -> QuerySet[Experiment]:
        return selectors.experiment_list()

    def _data(self, experiments: list[Experiment]) -> list[dict[str, Any]]:
        context = self.experiments_posterior_context(experiments)
        posteriors, decisions = context["posteriors"], context["decisions"]
        return [s.experiment_answer(experiment, posteriors, decisions[experiment.pk]) for experiment in experiments]

    # A list page or one experiment is answered whole from the cache, under the URL asked for
    # (its links name the host), until a writer invalidates the experiments (leads.caching).
    def list(self, request: Request) -> Response:
        return Response(caching.experiments_answer_cached(parts=_url(request), compute=self._page))

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(
            caching.experiments_answer_cached(parts=_url(request), compute=lambda: self._data([self.get_object()])[0])
        )

    def _page(self) -> dict[str, Any]:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # noqa: S101  # nosec B101  # pagination is configured for every list
        return dict(self.get_paginated_response(self._data(page)).data)

    def _shown(self, experiment_id: int) -> Response:
        return Response(self._data([selectors.experiment_list().get(pk=experiment_id)])[0])

    @extend_schema(request=s.ExperimentCreateSerializer, responses={201: s.ExperimentSerializer})
    def create(self, request: Request) -> Response:
        data = s.validated(s.ExperimentCreateSerializer, request.data)
        specs = [experiment_services.VariantSpec(**variant) for variant in data.pop("variants")]
        experiment = experiment_services.experiment_create(variants=specs, **data)
        response = self._shown(experiment.pk)
        response.status_code = status.HTTP_201_CREATED
        return response

    @extend_schema(request=s.ExperimentUpdateSerializer, responses=s.ExperimentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        experiment = self.get_object()
        changes = s.validated(s.ExperimentUpdateSerializer, request.data)
        experiment_services.experiment_update(experiment=experiment, **changes)
        return self._shown(experiment.pk)

    def destroy(self, request: Request, pk: str) -> Response:
        experiment_services.experiment_delete(experiment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        experiment_services.experiment_set_status(experiment=self.get_object(), status=Experiment.Status.PAUSED)
        return self._shown(int(pk))

    @extend_schema(request=None, responses=s.ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        experiment_services.experiment_set_status(experiment=self.get_object(), status=Experiment.Status.ACTIVE)
        return self._shown(int(pk))

    @extend_schema(
        request=s.ExperimentShipSerializer,
        responses={200: s.ExperimentSerializer, 409: None},
        description="Ship a variant (usually decision.winner): every other variant of the experiment is paused, "
        "so all its outreach gets this one, and the experiment records what was shipped, when and by whom. 409 for "
        "a variant of another experiment, a paused one, or an experiment that shipped another variant already.",
    )
    @action(detail=True, methods=["post"])
    def ship(self, request: Request, pk: str) -> Response:
        variant = s.validated(s.ExperimentShipSerializer, request.data)["variant"]
        experiment_services.experiment_ship(experiment=self.get_object(), variant=variant, by=requester(request))
        return self._shown(int(pk))


@extend_schema(parameters=[OpenApiParameter("experiment_pk", int, OpenApiParameter.PATH)])
class VariantViewSet(_PosteriorContextMixin, viewsets.GenericViewSet):
    """The arms of one experiment, at /experiments/{experiment_pk}/variants/."""

    serializer_class = s.VariantSerializer
    pagination_class = None
    filter_backends: list[Any] = []

    def get_experiment(self) -> Experiment:
        return get_object_or_404(Experiment, pk=self.kwargs["experiment_pk"])

    def get_queryset(self) -> QuerySet[Variant]:
        return selectors.variant_list(experiment=self.get_experiment())

    def _answer(self, variant: Variant, code: int = status.HTTP_200_OK) -> Response:
        siblings = list(selectors.variant_list(experiment=variant.experiment))
        posteriors = self.posterior_context(siblings)["posteriors"]
        return Response(s.variant_answer(variant, posteriors[variant.pk]), status=code)

    def list(self, request: Request, experiment_pk: str) -> Response:
        variants = list(self.get_queryset())
        posteriors = self.posterior_context(variants)["posteriors"]
        return Response([s.variant_answer(variant, posteriors[variant.pk]) for variant in variants])

    def retrieve(self, request: Request, experiment_pk: str, pk: str) -> Response:
        return self._answer(self.get_object())

    @extend_schema(request=s.VariantWriteSerializer, responses={201: s.VariantSerializer})
    def create(self, request: Request, experiment_pk: str) -> Response:
        data = s.validated(s.VariantWriteSerializer, request.data)
        variant = experiment_services.variant_create(experiment=self.get_experiment(), **data)
        return self._answer(variant, status.HTTP_201_CREATED)

    @extend_schema(request=s.VariantUpdateSerializer, responses=s.VariantSerializer)
    def partial_update(self, request: Request, experiment_pk: str, pk: str) -> Response:
        changes = s.validated(s.VariantUpdateSerializer, request.data)
        return self._answer(experiment_services.variant_update(variant=self.get_object(), **changes))

    def destroy(self, request: Request, experiment_pk: str, pk: str) -> Response:
        experiment_services.variant_delete(variant=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.VariantSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, experiment_pk: str, pk: str) -> Response:
        return self._answer(experiment_services.variant_update(variant=self.get_object(), is_active=False))

    @extend_schema(request=None, responses=s.VariantSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, experiment_pk: str, pk: str) -> Response:
        return self._answer(experiment_services.variant_update(variant=self.get_object(), is_active=True))


class OutreachViewSet(_LeanListMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    list_columns = s.OUTREACH_COLUMNS
    list_expressions = s.OUTREACH_EXPRESSIONS
    serializer_class = s.OutreachSerializer
    filterset_class = OutreachFilter
    search_fields = ["to_email", "subject", "lead__company_name"]
    ordering_fields = ["created_at", "sent_at", "status"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.outreach_list()


class DashboardViewSet(viewsets.ViewSet):
    """Funnel, timeline and activity feed for dashboards."""

    @extend_schema(parameters=[s.FunnelQuerySerializer], responses=s.FunnelSerializer)
    @action(detail=False, methods=["get"])
    def funnel(self, request: Request) -> HttpResponseBase:
        period = s.validated_query(s.FunnelQuerySerializer, request.query_params)["period"]
        return plain_data_response(request, caching.dashboard_funnel_cached(period=period, present=s.funnel_answer))

    @extend_schema(parameters=[s.TimelineQuerySerializer], responses=s.TimelinePointSerializer(many=True))
    @action(detail=False, methods=["get"])
    def timeline(self, request: Request) -> HttpResponseBase:
        days = s.validated_query(s.TimelineQuerySerializer, request.query_params)["days"]
        return plain_data_response(request, caching.dashboard_timeline_cached(days=days, present=s.timeline_answer))

    @extend_schema(parameters=[s.ActivityQuerySerializer], responses=s.ActivitySerializer(many=True))
    @action(detail=False, methods=["get"])
    def activity(self, request: Request) -> Response:
        limit = s.validated_query(s.ActivityQuerySerializer, request.query_params)["limit"]
        # The selector's items are the answer's shape already (ActivitySerializer describes it):
        # a serializer per row cost more than the query.
        return Response(selectors.dashboard_activity(limit=limit))
