"""EXPLAIN ANALYZE of the read paths that issue 16 found keeping PostgreSQL busy, on the API
bench's database (`pw_bench_api`, left by bench/api_load.py's last data set): the activity feed's
one query, and a lead list page at the start and deep in the table (the cursor's range read).
Prints each plan with its execution time; a Seq Scan or a Sort over a whole table is the sign.

    python bench/explain_reads.py
"""

from __future__ import annotations

import json
import os
import sys
from base64 import urlsafe_b64encode
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.api_load import DATABASE_URL, base_env  # noqa: E402

os.environ.update({**base_env(), "DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "pipeline_whisperer.settings"})

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from leads import selectors  # noqa: E402
from leads.models import Lead  # noqa: E402
from pipeline_whisperer.models import ApiKey  # noqa: E402


def explain(title: str, sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        print(f"--- {title}\n" + "\n".join(line for (line,) in cursor.fetchall()) + "\n")


def lead_page_sql(path: str, key: str) -> str:
    with CaptureQueriesContext(connection) as captured:
        response = Client().get(path, HTTP_X_API_KEY=key)
    assert response.status_code == 200, response.content  # noqa: S101
    return next(q["sql"] for q in captured.captured_queries if '"leads_lead"' in q["sql"])


def main() -> None:
    print(f"{Lead.objects.count()} leads")
    explain("dashboard activity (limit 50)", selectors._activity_sql(), [50] * 4)
    _, key = ApiKey.objects.create_key(name="explain", scope=ApiKey.Scope.READ)
    first = "/api/v1/leads?status=scored"
    explain("lead list, first page", lead_page_sql(first, key))
    # A page deep in the table: the cursor of the row 50 from the oldest, made as a next link makes it.
    deep = Lead.objects.filter(status="scored").order_by("created_at", "id").values("created_at", "id")[50]
    token = [["created_at", "id"], [deep["created_at"].isoformat(), deep["id"]], False]
    cursor = urlsafe_b64encode(json.dumps(token).encode()).decode()
    explain("lead list, a page deep in the table", lead_page_sql(f"{first}&cursor={cursor}", key))


if __name__ == "__main__":
    main()
