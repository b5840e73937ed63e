"""What rendering a list page costs: DRF's JSONRenderer beside drf-orjson-renderer's, as the API
is configured (REST_FRAMEWORK's ORJSON_RENDERER_OPTIONS), on one 50-row lead list page.

Pure Python, no database or server: CPU microseconds (time.process_time) per render, median of
ROUNDS rounds of REPEAT renders, and whether both give the same JSON.

    python bench/json_render.py [--rounds 7] [--repeat 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_whisperer.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django

django.setup()

from drf_orjson_renderer.renderers import ORJSONRenderer  # noqa: E402
from rest_framework.renderers import BaseRenderer, JSONRenderer  # noqa: E402


def lead_page(rows: int = 50) -> dict:
    """A page as the lead list answers it: `.values()` rows, datetimes left for the renderer."""
    now = datetime.now(UTC)
    row = {"status": "scored", "score": 0.123, "persona": "smb", "company_industry": "software", "company_size": ""}
    results = [
        {"id": i, "lightfield_id": f"bench-{i}", "company_name": f"Company {i}", "contact_name": f"Dana {i}",
         "contact_email": f"c{i}@example.com", "contact_title": "CTO", "created_at": now, "updated_at": now, **row}
        for i in range(rows)
    ]  # fmt: skip
    return {"next": "http://127.0.0.1/api/v1/leads?cursor=abc", "previous": None, "results": results}


def cpu_us(renderer: BaseRenderer, page: dict, *, rounds: int, repeat: int) -> float:
    medians = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(repeat):
            renderer.render(page, "application/json", {})
        medians.append((time.process_time() - started) / repeat * 1e6)
    return statistics.median(medians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    page = lead_page()
    drf, orjson = JSONRenderer(), ORJSONRenderer()
    same = json.loads(drf.render(page, "application/json", {})) == json.loads(orjson.render(page, "application/json"))
    drf_us = cpu_us(drf, page, rounds=args.rounds, repeat=args.repeat)
    orjson_us = cpu_us(orjson, page, rounds=args.rounds, repeat=args.repeat)
    print(f"DRF JSONRenderer: {drf_us:.0f} us CPU a page; ORJSONRenderer: {orjson_us:.0f} us "
          f"({drf_us / orjson_us:.1f}x faster); same JSON: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
