"""What staff and the API add to the suppression list, lift from it, import and export."""

from __future__ import annotations

import pytest

from leads.models import Suppression
from leads.services.suppression import (
    SuppressionResult,
    address_key,
    suppression_add,
    suppression_add_hashed,
    suppression_add_many,
    suppression_remove,
    suppressions_matching,
    value_hash,
)
from leads.services.suppression_csv import suppressions_export_csv, suppressions_import_csv
from pipeline_whisperer.exceptions import Conflict, InvalidInput

pytestmark = pytest.mark.django_db


def _one(entry: object) -> SuppressionResult:
    (result,) = suppression_add_many(entries=[entry], source="test")
    return result


def test_an_address_in_any_case_is_one_entry():
    first = _one({"value": "DANA@Acme-One.Example"})
    second = _one({"value": "dana@acme-one.example"})
    assert (first.created, second.created) == (True, False)
    assert first.id == second.id
    assert Suppression.objects.get().value == "dana@acme-one.example"


def test_an_idn_domain_is_kept_in_unicode_and_matches_its_punycode_form():
    result = _one({"value": "BÜCHER.example", "note": "asked by phone"})
    assert (result.kind, result.value) == ("domain", "bücher.example")
    assert _one({"value": "xn--bcher-kva.example", "kind": "domain"}).created is False
    assert suppressions_matching([address_key("anna@BÜCHER.example")])


def test_a_domain_entry_suppresses_every_address_at_it():
    result = _one({"value": "@Globex.Example", "reason": "complaint"})
    assert (result.kind, result.value, result.reason) == ("domain", "globex.example", "complaint")
    assert suppressions_matching(["hank@globex.example"]) == {
        "hank@globex.example": "the domain globex.example is suppressed (complaint)"
    }


def test_an_entry_without_a_kind_is_taken_as_an_address_when_it_has_a_local_part():
    assert _one({"value": "ada@acme.example"}).kind == "address"
    assert _one({"value": "acme.example"}).kind == "domain"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"value": "not-an-address", "kind": "address"}, "'not-an-address' is not a valid address"),
        ({"value": "a@b"}, "It should have a period"),
        ({"value": "ada@acme.example\r\nBcc: all@acme.example"}, "value: Must be one line"),
        ({"value": "acme.example\nX-Evil: 1", "kind": "domain"}, "value: Must be one line"),
        ({"value": "acme", "kind": "domain"}, "The domain is not valid"),
        ({"value": ""}, "value: Give an address or a domain"),
        ({"value": 42}, "value: Give an address or a domain"),
        ({"value": "ada@acme.example", "kind": "person"}, "'person' is not one of address, domain"),
        ({"value": "ada@acme.example", "reason": "erased"}, "erased comes from a privacy erasure"),
        ({"value": "ada@acme.example", "note": "x" * 501}, "note: At most 500 characters"),
        ("ada@acme.example", "must be an object"),
        ({"value": "ada@acme.example", "reason": 3}, "reason: Must be a string"),
    ],
)
def test_a_malformed_entry_is_refused_with_why_and_nothing_is_stored(entry, says):
    result = _one(entry)
    assert result.created is None and result.id is None
    assert result.error is not None and says in result.error
    assert not Suppression.objects.exists()


def test_a_batch_keeps_its_valid_entries_and_reports_the_broken_ones_by_index():
    results = suppression_add_many(
        entries=[
            {"value": "ada@acme.example"},
            {"value": "a@b"},
            {"value": "globex.example", "reason": "hard_bounce"},
            {"value": "ADA@acme.example", "reason": "complaint"},
        ],
        source="api",
    )
    assert [result.index for result in results] == [0, 1, 2, 3]
    assert [result.created for result in results] == [True, None, True, False]
    assert results[1].error and results[0].error is None
    assert results[3].id == results[0].id and results[3].reason == "staff"  # the first reason stands
    assert set(Suppression.objects.values_list("value", "source")) == {
        ("ada@acme.example", "api"),
        ("globex.example", "api"),
    }


def test_adding_an_existing_entry_keeps_its_first_reason():
    suppression_add(kind="address", value="ada@acme.example", reason="unsubscribed", source="one-click")
    result = _one({"value": "ada@acme.example", "reason": "staff"})
    assert (result.created, result.reason) == (False, "unsubscribed")


def test_a_note_is_kept_on_one_line():
    _one({"value": "ada@acme.example", "note": "asked\r\nby phone"})
    assert Suppression.objects.get().note == "asked by phone"


def test_removing_a_staff_entry_lifts_the_suppression():
    entry, _ = suppression_add(kind="address", value="ada@acme.example", reason="staff")
    suppression_remove(suppression=entry)
    assert not suppressions_matching(["ada@acme.example"])


def test_an_erased_entry_is_never_removed():
    entry = suppression_add_hashed(kind="address", digest=value_hash("ada@acme.example"), reason="erased")
    with pytest.raises(Conflict, match="never mailed again"):
        suppression_remove(suppression=entry)
    assert suppressions_matching(["ada@acme.example"])


def test_an_entry_erased_since_it_was_read_is_not_removed():
    entry, _ = suppression_add(kind="address", value="ada@acme.example", reason="staff")
    suppression_add_hashed(kind="address", digest=entry.value_hash, reason="erased")  # a privacy erasure meanwhile
    with pytest.raises(Conflict):
        suppression_remove(suppression=entry)  # the copy read before still says staff
    assert Suppression.objects.get(pk=entry.pk).reason == "erased"


# --- CSV ----------------------------------------------------------------------------------


def test_csv_import_keeps_the_good_rows_and_reports_each_broken_one_by_line():
    data = (
        b"value,kind,reason,note\n"
        b"ada@acme.example,,unsubscribed,asked by mail\n"  # line 2
        b"not-an-address,address,,\n"  # line 3
        b"\n"  # line 4: blank, not a row
        b"globex.example,,,\n"  # line 5
        b"a@b,,,\n"  # line 6
        b"hank@initech.example,,whenever,\n"  # line 7
        b'"quoted@acme.example",,,"a note, with a comma"\n'  # line 8
    )
    report = suppressions_import_csv(file=data, source="csv")
    assert (report.added, report.existing) == (3, 0)
    assert [error.line for error in report.errors] == [3, 6, 7]
    assert "not a valid address" in report.errors[0].error
    assert "'whenever' is not one of" in report.errors[2].error
    assert set(Suppression.objects.values_list("value", "reason")) == {
        ("ada@acme.example", "unsubscribed"),
        ("globex.example", "staff"),
        ("quoted@acme.example", "staff"),
    }


def test_csv_import_reads_an_email_column_with_semicolons_and_a_byte_order_mark():
    data = "\ufeffName;Email\nAda;ADA@acme.example\nBob;bob@acme.example\n".encode()
    report = suppressions_import_csv(file=data, source="csv")
    assert (report.added, report.errors) == (2, [])
    assert sorted(Suppression.objects.values_list("value", flat=True)) == ["ada@acme.example", "bob@acme.example"]


def test_csv_import_counts_rows_already_suppressed():
    suppression_add(kind="domain", value="acme.example", reason="staff")
    report = suppressions_import_csv(file=b"domain\nacme.example\nglobex.example\n", source="csv")
    assert (report.added, report.existing) == (1, 1)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not CSV text"),
        ("value\nadä@acme.example\n".encode("latin-1"), "not UTF-8 text"),
        (b"ada@acme.example\nbob@acme.example\n", "header naming a value column"),
        (b"", "header naming a value column"),
    ],
)
def test_csv_import_refuses_a_file_that_is_not_utf8_csv_with_a_header(data, says):
    with pytest.raises(InvalidInput, match=says):
        suppressions_import_csv(file=data, source="csv")
    assert not Suppression.objects.exists()


def test_csv_export_blanks_erased_values_and_round_trips_through_import():
    suppression_add(kind="address", value="=cmd@acme.example", reason="staff", note="+1 555")
    suppression_add(kind="domain", value="globex.example", reason="complaint")
    suppression_add_hashed(kind="address", digest=value_hash("gone@acme.example"), reason="erased")
    lines = list(suppressions_export_csv(Suppression.objects.order_by("id")))
    assert lines[0] == "kind,value,reason,source,note,created_at\r\n"
    assert lines[1].startswith("address,'=cmd@acme.example,staff,,'+1 555,")
    assert lines[3].startswith("address,,erased,")
    Suppression.objects.exclude(reason="erased").delete()
    report = suppressions_import_csv(file="".join(lines).encode(), source="csv")
    assert report.added == 2
    assert [error.line for error in report.errors] == [4]  # the erased row has no value to import
    assert Suppression.objects.get(kind="address", reason="staff").value == "=cmd@acme.example"
