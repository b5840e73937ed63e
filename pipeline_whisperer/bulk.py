"""Bulk inserts and upserts for the pipeline's batches: one statement per batch, without the
per-value cost of `bulk_create` on PostgreSQL.

Django 5.2's `bulk_create` sends a PostgreSQL batch as one array per column (UNNEST); with
psycopg's client-side binding each array is quoted value by value in Python, which cost the
scorer more than everything else it does for a batch. Here the batch travels as one JSON
document that PostgreSQL unpacks itself (`jsonb_to_recordset`). Other databases (SQLite in the
embedded default) take `bulk_create`, which is fast enough there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from django.db import connection, models
from django.utils import timezone

ModelT = TypeVar("ModelT", bound=models.Model)


def bulk_insert(
    objs: Sequence[ModelT],
    *,
    key_field: str,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
) -> Sequence[ModelT]:
    """Insert `objs` (new instances, pk unset) in one statement and set their primary keys; the
    arguments as for `bulk_upsert`."""
    if not objs:
        return objs
    model = type(objs[0])
    fields = _fields(model)
    for obj in objs:
        for field in fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                field.pre_save(obj, add=True)
    rows = [{field.attname: field.value_from_object(obj) for field in fields} for obj in objs]
    pks = bulk_upsert(model, rows, key_field=key_field, unique_fields=unique_fields, update_fields=update_fields)
    for obj in objs:
        obj.pk = pks[_key(getattr(obj, key_field))]
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def bulk_upsert(
    model: type[models.Model],
    rows: Sequence[dict[str, Any]],
    *,
    key_field: str,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
) -> dict[str, Any]:
    """Insert `rows` (field attname -> value; a missing field takes its default, auto_now fields
    take now) in one statement; the primary key of each row by its `key_field` value (as text),
    which must be unique among the rows.

    With `unique_fields`, a row that conflicts on them updates `update_fields` of the row it met
    instead, as `bulk_create(update_conflicts=True)` does.
    """
    if not rows:
        return {}
    if connection.vendor != "postgresql":
        objs = [model(**row) for row in rows]
        if unique_fields:
            model._default_manager.bulk_create(
                objs, update_conflicts=True, unique_fields=unique_fields, update_fields=update_fields
            )
        else:
            model._default_manager.bulk_create(objs)
        return {_key(getattr(obj, key_field)): obj.pk for obj in objs}
    fields = _fields(model)
    now = timezone.now()
    defaults = {field.attname: now if _is_auto_time(field) else field.get_default() for field in fields}
    complete = [{**defaults, **row} for row in rows]
    quote = connection.ops.quote_name
    column_of = {field.attname: _column(model, field.name) for field in fields}
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(column_of[field.attname]) for field in fields)
    types = ", ".join(f"{quote(column_of[field.attname])} {_column_type(field)}" for field in fields)
    sql = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS batch({types})"  # noqa: S608  # nosec B608  # names from the model, values bound
    if unique_fields:
        conflict = ", ".join(quote(_column(model, name)) for name in unique_fields)
        updates = ", ".join(f"{(column := quote(_column(model, name)))} = EXCLUDED.{column}" for name in update_fields)
        sql += f" ON CONFLICT ({conflict}) DO UPDATE SET {updates}"  # nosec B608  # names from the model
    sql += f" RETURNING {quote(_column(model, model._meta.pk.name))}, {quote(_column(model, key_field))}"
    document = json.dumps(
        [{column_of[name]: value for name, value in row.items()} for row in complete],
        default=_json_value,
        separators=(",", ":"),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])
        return {_key(row_key): pk for pk, row_key in cursor.fetchall()}


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column  # noqa: S101  # nosec B101  (a concrete field)
    return field.column


def _fields(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def _is_auto_time(field: models.Field) -> bool:
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


def _key(value: Any) -> str:
    return str(value)


def _column_type(field: models.Field) -> str:
    target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
    return str(target.db_type(connection))


def _json_value(value: Any) -> Any:
    """What json cannot encode on its own; datetimes keep their microseconds and offset."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a bulk insert")
