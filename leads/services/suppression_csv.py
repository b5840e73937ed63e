"""The suppression list as CSV, for staff moving it between tools (the admin's import and export).

Import takes UTF-8 text (a byte-order mark is fine) with a header row naming a `value` column
(or `email`, or `domain`) and optionally `kind`, `reason` (default staff) and `note`; other
columns are ignored, so another tool's export can be read as it is. Each row goes through
`suppression_add_many`: a broken row is reported by its line number and the good rows are kept.
Export writes what import reads; an erased person's entry has an empty value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.db.models import QuerySet

from leads.models import Suppression
from leads.services.suppression import suppression_add_many
from pipeline_whisperer.exceptions import InvalidInput, PayloadTooLarge

IMPORT_MAX_BYTES = 20 * 1024 * 1024
IMPORT_MAX_ROWS = 100_000
EXPORT_COLUMNS = ["kind", "value", "reason", "source", "note", "created_at"]
VALUE_COLUMNS = {"value": "", "email": Suppression.Kind.ADDRESS, "domain": Suppression.Kind.DOMAIN}
# A cell a spreadsheet would run as a formula starts with one of these: exported with a "'" first
# (OWASP's advice on CSV injection), which import takes off again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class LineError:
    line: int
    error: str


@dataclass(frozen=True)
class ImportReport:
    """Rows added, rows already suppressed, and each broken row by its line in the file."""

    added: int
    existing: int
    errors: list[LineError]


def suppressions_import_csv(*, file: IO[bytes] | bytes, source: str) -> ImportReport:
    """Suppress each good row of a CSV file, all in one transaction; InvalidInput (one clear line)
    when the file is not UTF-8 CSV text or has no header naming a value column."""
    data = file if isinstance(file, bytes) else file.read(IMPORT_MAX_BYTES + 1)
    if len(data) > IMPORT_MAX_BYTES:
        raise PayloadTooLarge(f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB; split it.")
    text = _text_of(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter_of(text))
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise InvalidInput(f"The file is not CSV text: {error}.") from None
    columns = _columns_of(header or [])
    entries: list[dict[str, Any]] = []
    lines: list[int] = []
    errors: list[LineError] = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader, None)
        except csv.Error as error:
            errors.append(LineError(start, f"not readable as CSV: {error}"))
            line = reader.line_num
            continue
        line = reader.line_num
        if row is None:
            break
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not rows
        if len(entries) == IMPORT_MAX_ROWS:
            raise PayloadTooLarge(f"The file holds more than {IMPORT_MAX_ROWS} rows; split it.")
        entries.append(_entry_of(row, columns))
        lines.append(start)
    results = suppression_add_many(entries=entries, source=source)
    errors += [LineError(lines[result.index], result.error) for result in results if result.error]
    return ImportReport(
        added=sum(1 for result in results if result.created),
        existing=sum(1 for result in results if result.created is False),
        errors=sorted(errors, key=lambda error: error.line),
    )


def _text_of(data: bytes) -> str:
    if b"\x00" in data:
        raise InvalidInput("The file is not CSV text (it holds binary data); upload a UTF-8 .csv file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"The file is not UTF-8 text (byte {error.start + 1} cannot be read); save it as CSV UTF-8 and try again."
        ) from None


def _delimiter_of(text: str) -> str:
    """The header's separator: comma, or the semicolon or tab some spreadsheets save with. Read
    from the header alone, where no note can hold one by chance."""
    header = text.split("\n", 1)[0]
    return max([",", ";", "\t"], key=header.count)


def _columns_of(header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    columns = {name: position for position, name in reversed(list(enumerate(names))) if name}
    if not any(name in columns for name in VALUE_COLUMNS):
        found = ", ".join(repr(name) for name in header[:6]) or "nothing"
        raise InvalidInput(
            f"The first line must be a header naming a value column (value, email or domain); found {found}."
        )
    return columns


def _entry_of(row: list[str], columns: dict[str, int]) -> dict[str, Any]:
    def cell(name: str) -> str:
        position = columns.get(name)
        raw = row[position] if position is not None and position < len(row) else ""
        return raw[1:] if raw.startswith("'") and raw[1:].startswith(_FORMULA_START) else raw

    value_column = next(name for name in VALUE_COLUMNS if name in columns)
    return {
        "value": cell(value_column),
        "kind": cell("kind").strip() or VALUE_COLUMNS[value_column],
        "reason": cell("reason").strip(),
        "note": cell("note").strip(),
    }


def suppressions_export_csv(queryset: QuerySet[Suppression]) -> Iterator[str]:
    """The entries as CSV lines (header first), streamed; an erased entry's value is empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Iterable[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_safe(cell) for cell in cells])
        return buffer.getvalue()

    yield line(EXPORT_COLUMNS)
    for entry in queryset.iterator(chunk_size=2000):
        value = "" if entry.reason == Suppression.Reason.ERASED else entry.value
        yield line([entry.kind, value, entry.reason, entry.source, entry.note, entry.created_at.isoformat()])


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell
