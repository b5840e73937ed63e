"""The suppression list in the admin: bulk add, CSV import and export, removal; erased entries stay."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from leads.models import Suppression
from leads.services.suppression import suppression_add, suppression_add_hashed, value_hash

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:leads_suppression_changelist")
BULK_ADD = reverse("admin:leads_suppression_bulk_add")
IMPORT = reverse("admin:leads_suppression_import")


@pytest.fixture
def entries() -> dict[str, Suppression]:
    return {
        "ada": suppression_add(kind="address", value="ada@acme.example", reason="unsubscribed")[0],
        "globex": suppression_add(kind="domain", value="globex.example", reason="staff", note="=HYPERLINK()")[0],
        "gone": suppression_add_hashed(kind="address", digest=value_hash("gone@acme.example"), reason="erased"),
    }


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_changelist_shows_entries_with_erased_ones_unnamed(admin_client, entries):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == set(entries.values())
    page = response.content.decode()
    assert "(erased)" in page and "Bulk add" in page and "Import CSV" in page


def test_changelist_filters_by_reason_and_kind(admin_client, entries):
    response = admin_client.get(CHANGELIST, {"reason__exact": "staff", "kind__exact": "domain"})
    assert list(response.context["cl"].result_list) == [entries["globex"]]


def test_search_finds_an_erased_person_by_their_exact_address(admin_client, entries):
    response = admin_client.get(CHANGELIST, {"q": "Gone@ACME.example"})
    assert list(response.context["cl"].result_list) == [entries["gone"]]
    assert list(admin_client.get(CHANGELIST, {"q": "acme"}).context["cl"].result_list) == [entries["ada"]]


def test_an_entry_is_shown_read_only_with_its_hash(admin_client, entries):
    url = reverse("admin:leads_suppression_change", args=[entries["ada"].pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert entries["ada"].value_hash in response.content.decode()
    assert admin_client.post(url, {"value": "eve@acme.example"}).status_code == 403
    assert Suppression.objects.get(pk=entries["ada"].pk).value == "ada@acme.example"


def test_add_leads_to_bulk_add(admin_client):
    response = admin_client.get(reverse("admin:leads_suppression_add"))
    assert response.status_code == 302 and response["Location"] == BULK_ADD


def test_bulk_add_keeps_the_good_lines_and_reports_the_broken_ones_by_line(admin_client):
    values = "DANA@Acme-One.Example\n\nnot-an-address\nBÜCHER.example\na@b\ndana@acme-one.example\n"
    response = admin_client.post(BULK_ADD, {"values": values, "kind": "", "reason": "complaint", "note": "list A"})
    assert response.status_code == 200
    assert [(error.line, error.error.split(":")[0]) for error in response.context["line_errors"]] == [
        (3, "value"),
        (5, "value"),
    ]
    assert "Added 2; 1 were suppressed already." in _messages(response)
    assert response.context["form"].initial["values"] == "not-an-address\na@b"  # the broken lines, to fix
    assert "is not a valid address" in response.content.decode()
    assert set(Suppression.objects.values_list("kind", "value", "reason", "source", "note")) == {
        ("address", "dana@acme-one.example", "complaint", "admin:admin", "list A"),
        ("domain", "bücher.example", "complaint", "admin:admin", "list A"),
    }


def test_bulk_add_of_good_lines_goes_back_to_the_list(admin_client):
    response = admin_client.post(BULK_ADD, {"values": "acme.example\r\nhank@globex.example", "reason": "staff"})
    assert response.status_code == 302 and response["Location"] == CHANGELIST
    assert Suppression.objects.count() == 2


def test_bulk_add_refuses_erased_as_a_reason(admin_client):
    response = admin_client.post(BULK_ADD, {"values": "ada@acme.example", "reason": "erased"})
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    assert not Suppression.objects.exists()


def test_csv_import_shows_each_broken_line_and_keeps_the_good_rows(admin_client):
    data = b"email,reason,note\nada@acme.example,unsubscribed,by mail\nada@@acme.example,,\nbob@acme.example,whim,\n"
    response = admin_client.post(IMPORT, {"file": SimpleUploadedFile("list.csv", data, content_type="text/csv")})
    assert response.status_code == 200
    assert [error.line for error in response.context["line_errors"]] == [3, 4]
    page = response.content.decode()
    assert "not a valid address" in page and "&#x27;whim&#x27; is not one of" in page
    assert "Added 1; 0 were suppressed already." in _messages(response)
    assert list(Suppression.objects.values_list("value", "reason", "source")) == [
        ("ada@acme.example", "unsubscribed", "csv:admin")
    ]


def test_csv_import_refuses_a_file_that_is_not_csv_with_one_error(admin_client):
    image = SimpleUploadedFile("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", content_type="image/png")
    response = admin_client.post(IMPORT, {"file": image})
    assert response.status_code == 200
    assert response.context["form"].errors["file"] == [
        "The file is not CSV text (it holds binary data); upload a UTF-8 .csv file."
    ]
    assert not Suppression.objects.exists()


def test_export_action_writes_csv_with_erased_values_blank(admin_client, entries):
    response = admin_client.post(
        CHANGELIST, {"action": "export_csv", "_selected_action": [entry.pk for entry in entries.values()]}
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "kind,value,reason,source,note,created_at"
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["address", "ada@acme.example"],
        ["domain", "globex.example"],
        ["address", ""],
    ]
    assert ",'=HYPERLINK()," in lines[2]  # a formula never runs in a spreadsheet


def test_remove_action_removes_the_others_and_keeps_the_erased_entry(admin_client, entries):
    response = admin_client.post(
        CHANGELIST,
        {"action": "remove_selected", "_selected_action": [entry.pk for entry in entries.values()]},
        follow=True,
    )
    assert any("Removed 2 of the selected suppressions" in text for text in _messages(response))
    assert any("never mailed again" in text for text in _messages(response))
    assert list(Suppression.objects.all()) == [entries["gone"]]


def test_the_delete_page_of_an_erased_entry_is_refused(admin_client, entries):
    assert admin_client.get(reverse("admin:leads_suppression_delete", args=[entries["gone"].pk])).status_code == 403
    response = admin_client.post(reverse("admin:leads_suppression_delete", args=[entries["ada"].pk]), {"post": "yes"})
    assert response.status_code == 302
    assert set(Suppression.objects.all()) == {entries["globex"], entries["gone"]}


def test_delete_selected_is_not_offered(admin_client, entries):
    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _ in actions]


@pytest.mark.parametrize("url", [BULK_ADD, IMPORT])
def test_bulk_add_and_import_are_for_staff_only(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_user(username="plain", password="not-staff-0"))
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
