"""Fill the bench database: leads, experiments with variants, outreach; print what the load needs.

Run by bench/api_load.py as a subprocess with DATABASE_URL naming the (migrated) bench database:
`api_seed.py LEADS VARIANTS OUTREACH [EXPERIMENTS]` (the variants spread evenly over the
experiments, by default 5 an experiment); one engagement event per 5 outreach. Prints one JSON
object: an API key, a lead id, outreach message ids, and the SQL the lead list
endpoint runs (captured from the real view), which the raw-psycopg baseline replays.
"""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_whisperer.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from leads.models import EngagementEvent, Experiment, Lead, Outreach, OutreachTemplate, Variant  # noqa: E402
from pipeline_whisperer.models import ApiKey  # noqa: E402

LEAD_LIST_URL = "/api/v1/leads?status=scored"
BATCH = 5_000


def seed(*, leads: int, variants: int, experiments: int, outreach: int, rng: random.Random) -> None:
    now = timezone.now()
    statuses = [Lead.Status.SCORED, Lead.Status.CONTACTED, Lead.Status.DISQUALIFIED, Lead.Status.RAW]
    personas = [choice for choice, _ in Lead._meta.get_field("persona").choices]
    for start in range(0, leads, BATCH):
        Lead.objects.bulk_create(
            Lead(
                lightfield_id=f"bench-{number}",
                status=rng.choice(statuses),
                company_name=f"Company {number}",
                company_industry=rng.choice(["software", "retail", "finance", "health"]),
                contact_email=f"contact{number}@example.com",
                contact_title=rng.choice(["CTO", "VP Sales", "Engineer", "Founder"]),
                score=round(rng.random(), 3),
                persona=rng.choice(personas),
                scored_at=now - timedelta(minutes=number % 10_000),
            )
            for number in range(start, min(start + BATCH, leads))
        )
    template = OutreachTemplate.objects.create(name="bench", subject="Hello {{ company.name }}", body="Hi")
    arms = []
    per_experiment = -(-variants // experiments)
    for number in range(variants):
        experiment, _ = Experiment.objects.get_or_create(name=f"bench experiment {number // per_experiment}")
        arms.append(Variant.objects.create(experiment=experiment, name=f"arm {number}", template=template))
    lead_ids = list(Lead.objects.order_by("id").values_list("id", flat=True)[:outreach])
    for start in range(0, len(lead_ids), BATCH):
        Outreach.objects.bulk_create(
            Outreach(
                lead_id=lead_id,
                variant=arms[index % len(arms)],
                status=Outreach.Status.SENT,
                to_email=f"contact{lead_id}@example.com",
                subject="Hello",
                body="Hi",
                message_id=f"bench-{index}@bench",
                sent_at=now,
            )
            for index, lead_id in enumerate(lead_ids[start : start + BATCH], start=start)
        )
    # The activity feed's third kind: some of the messages were opened, at spread-out times.
    opened = list(Outreach.objects.order_by("id").values_list("id", flat=True)[::5])
    for start in range(0, len(opened), BATCH):
        EngagementEvent.objects.bulk_create(
            EngagementEvent(
                event_id=f"bench-open-{outreach_id}",
                outreach_id=outreach_id,
                event_type=EngagementEvent.Type.OPENED,
                occurred_at=now - timedelta(seconds=outreach_id % 86_400),
            )
            for outreach_id in opened[start : start + BATCH]
        )


def lead_list_sql(key: str) -> list[list]:
    """The SQL statements on leads_lead that the lead list endpoint runs, with their parameters."""
    with CaptureQueriesContext(connection) as captured:
        response = Client().get(LEAD_LIST_URL, HTTP_X_API_KEY=key)
    assert response.status_code == 200, response.content  # noqa: S101
    # The captured SQL has its parameters inlined; the baseline runs it verbatim.
    return [query["sql"] for query in captured.captured_queries if '"leads_lead"' in query["sql"]]


def main() -> None:
    leads, variants, outreach = (int(value) for value in sys.argv[1:4])
    experiments = int(sys.argv[4]) if len(sys.argv) > 4 else -(-variants // 5)
    rng = random.Random(20261125)  # noqa: S311 - bench data, not cryptography
    if not Lead.objects.exists():
        seed(leads=leads, variants=variants, experiments=experiments, outreach=outreach, rng=rng)
        # As autovacuum would soon after a bulk load: planner statistics, and a visibility map
        # so counts can be index-only scans. Without it the planner guesses 13 rows for 25,000.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    _, key = ApiKey.objects.create_key(name="bench", scope=ApiKey.Scope.WRITE)
    print(
        json.dumps(
            {
                "api_key": key,
                "lead_id": Lead.objects.order_by("id").values_list("id", flat=True)[leads // 2],
                "outreach": outreach,
                "lead_list_url": LEAD_LIST_URL,
                "lead_list_sql": lead_list_sql(key),
            }
        )
    )


if __name__ == "__main__":
    main()
