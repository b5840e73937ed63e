"""Ceilings for the API bench: bare WSGI callables served by the same gunicorn configuration.

`fixed_json` answers a constant body: no framework at all, the most a liveness probe could do.
`lead_list` replays the SQL the lead list endpoint runs (captured from the real view, in
BENCH_LEAD_LIST_SQL as a JSON list) on a psycopg pool and dumps the rows as JSON: the most the
list endpoint could do with the same queries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_FIXED_BODY = b'{"status": "ok"}'
_pool = None


def fixed_json(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_FIXED_BODY)))])
    return [_FIXED_BODY]


def _default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def lead_list(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    global _pool
    if _pool is None:  # one pool per worker, opened after the fork
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        size = int(os.environ.get("DB_POOL_MAX_SIZE", "4"))
        _pool = ConnectionPool(os.environ["BENCH_DSN"], min_size=1, max_size=size, kwargs={"row_factory": dict_row})
    statements = json.loads(os.environ["BENCH_LEAD_LIST_SQL"])
    results = []
    with _pool.connection() as connection:
        for statement in statements:
            results.append(connection.execute(statement).fetchall())
    # The list's answer is one cursor page (no count): the last statement's rows.
    payload = json.dumps({"next": None, "previous": None, "results": results[-1]}, default=_default).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
