"""The ceilings of bench/pipeline_throughput.py: how fast one bare consumer takes leads.raw.

    python bench/pipeline_ceiling.py kafka  --bootstrap HOST:PORT --group G --leads N --batch-size B
    python bench/pipeline_ceiling.py insert --bootstrap HOST:PORT --group G --leads N --batch-size B \\
        --database-url postgres://...

kafka (ceiling a): confluent-kafka, consume(num_messages=B), then a synchronous offset commit
  after every batch; the consumer is configured as the stages' (no auto-commit, earliest,
  read_committed, the same session timeout).
insert (ceiling b): the same, plus per batch one transaction with one COPY ... FROM STDIN
  (psycopg 3, the fastest bulk insert it has) into bench_ceiling_lead, a table made with
  `CREATE TABLE ... (LIKE leads_lead INCLUDING ALL)`; every message's JSON is parsed and mapped
  to the lead table's columns (every column but id, as Django inserts a Lead). The offsets are
  committed after the database commit, as a stage does.

No Django. Prints one JSON line: {"batches": [[time.time() at the batch's commit, messages], ...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer
from psycopg import sql
from psycopg.types.json import Jsonb

TABLE = "bench_ceiling_lead"
# Lead column: where a Lightfield event carries it (the mapping of leads.lightfield.parse_event).
PATHS = {
    "lightfield_id": ("lightfield_id",),
    "company_name": ("company", "name"),
    "company_website": ("company", "website"),
    "company_industry": ("company", "industry"),
    "company_size": ("company", "size"),
    "company_description": ("company", "description"),
    "contact_name": ("contact", "name"),
    "contact_email": ("contact", "email"),
    "contact_title": ("contact", "title"),
    "contact_linkedin": ("contact", "linkedin"),
    "source_channel": ("source", "channel"),
    "source_campaign": ("source", "campaign"),
    "source_referrer": ("source", "referrer"),
    "tech_stack": ("metadata", "tech_stack"),
    "pain_points": ("metadata", "pain_points"),
    "budget_range": ("metadata", "budget_range"),
    "timeline": ("metadata", "timeline"),
}
FIXED = {"status": "raw", "persona": "unknown"}
# A NOT NULL column the event does not fill gets its type's empty value (the model's defaults).
EMPTY = {"jsonb": [], "integer": 0, "bigint": 0, "smallint": 0, "double precision": 0.0, "boolean": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["kafka", "insert"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--leads", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    insert = Inserter(args.database_url) if args.kind == "insert" else None
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000")),
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(["leads.raw"])
    batches: list[list[float]] = []
    taken, deadline = 0, time.monotonic() + args.timeout
    while taken < args.leads:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{taken} of {args.leads} messages after {args.timeout} s")
        messages = consumer.consume(num_messages=args.batch_size, timeout=1.0)
        if not messages:
            continue
        if error := next((message.error() for message in messages if message.error()), None):
            raise RuntimeError(f"consume error: {error}")
        if insert:
            insert([json.loads(message.value()) for message in messages])  # type: ignore[arg-type]
        consumer.commit(asynchronous=False)
        taken += len(messages)
        batches.append([time.time(), len(messages)])
    consumer.close()
    print(json.dumps({"batches": batches}))


class Inserter:
    """One transaction and one COPY per batch into the copy of leads_lead."""

    def __init__(self, database_url: str) -> None:
        self.db = psycopg.connect(database_url, autocommit=True)
        self.columns = self.db.execute(
            "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
            " WHERE table_name = %s AND column_name <> 'id' ORDER BY ordinal_position",
            (TABLE,),
        ).fetchall()
        self.copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(TABLE), sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in self.columns)
        )

    def __call__(self, events: list[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        rows = [self.row(event, now) for event in events]
        with self.db.transaction(), self.db.cursor().copy(self.copy) as copy:
            for row in rows:
                copy.write_row(row)

    def row(self, event: dict[str, Any], now: datetime) -> list[Any]:
        values = []
        for name, data_type, nullable in self.columns:
            if name in PATHS:
                value = dig(event, PATHS[name])
            elif name == "raw_payload":
                value = event
            elif name == "lightfield_created_at":
                value = timestamp(event.get("timestamp"))
            else:
                value = FIXED.get(name)
            if value is None and not nullable:
                value = now if data_type.startswith("timestamp") else EMPTY.get(data_type, "")
            values.append(Jsonb(value) if data_type == "jsonb" else value)
        return values


def dig(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


if __name__ == "__main__":
    main()
