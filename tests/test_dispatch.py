"""The dispatcher on real PostgreSQL and a real SMTP server on loopback: several processes share
the queue and send each mail once, at its time; a mail suppressed or paused is not sent; an
interrupted send goes again under its Message-ID; the stage process stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from leads.models import Lead, OutboxEvent, Outreach, SendingPause, Suppression, Variant
from leads.pipeline.dispatch import ticker_stop
from leads.services.dispatch import dispatch_due
from leads.services.leads import lead_emit_scored
from leads.services.suppression import suppression_add
from leads.tests.factories import LeadFactory, VariantFactory
from tests.pipeline_support import wait_until
from tests.stand_ins import ROOT, PipelineProcess, SmtpSink, free_port, pipeline_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mail_to_sink(settings, smtp_sink: SmtpSink) -> SmtpSink:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_sink.port
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # outreach.sent stays in the outbox: no in-process stages
    return smtp_sink


def _queue(variant: Variant, times: list[datetime], *, domain: str = "bigco.example", **fields) -> list[Outreach]:
    """Scheduled outreach as the outreach stage stores it: one lead each, due at `times`."""
    leads = [LeadFactory(contact_email=f"person{i}@{domain}", status=Lead.Status.SCORED) for i in range(len(times))]
    rows = [
        Outreach(
            lead=lead,
            variant=variant,
            to_email=lead.contact_email,
            recipient_key=lead.contact_email,
            recipient_domain=domain,
            subject=f"Hello {lead.company_name}",
            body="Hi there.",
            message_id=f"<{lead.pk}.{index}@whisperer.example>",
            status=fields.get("status", Outreach.Status.SCHEDULED),
            scheduled_for=due,
            claimed_at=fields.get("claimed_at"),
        )
        for index, (lead, due) in enumerate(zip(leads, times, strict=True))
    ]
    return Outreach.objects.bulk_create(rows)


def _future_hour() -> datetime:
    """A start two days ahead, so nothing but the test's clock makes these rows due."""
    return (timezone.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


class Driver:
    """`tests.dispatch_driver` in a child process: the test steps its clock."""

    def __init__(self, env: dict[str, str], batch_size: int) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "tests.dispatch_driver", str(batch_size)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._answer() == "ready"

    def _answer(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def ask(self, now: datetime) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(now.isoformat() + "\n")
        self.process.stdin.flush()

    def sent(self) -> int:
        answer = self._answer()
        assert answer.startswith("done "), answer
        return int(answer.split()[1])

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(30)


def test_two_dispatcher_processes_send_500_mails_to_one_domain_each_once_and_none_early(mail_to_sink, tmp_path):
    start, variant = _future_hour(), VariantFactory()
    times = [start + timedelta(seconds=i * 6 * 3600 // 500) for i in range(500)]
    rows = _queue(variant, times)
    due_by_message_id = {row.message_id: row.scheduled_for for row in rows}
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"], bootstrap="127.0.0.1:1", smtp_port=mail_to_sink.port
    )
    drivers = [Driver(env, batch_size=20), Driver(env, batch_size=20)]
    sent_by = [0, 0]
    seen: set[str] = set()
    try:
        for hour in range(7):
            now = start + timedelta(hours=hour, minutes=1)
            for driver in drivers:
                driver.ask(now)
            for index, driver in enumerate(drivers):
                sent_by[index] += driver.sent()
            arrived = [mail["Message-ID"] for mail in mail_to_sink.received()]
            new = set(arrived) - seen
            assert all(due_by_message_id[message_id] <= now for message_id in new), "a mail went out early"
            assert seen | new == {mid for mid, due in due_by_message_id.items() if due <= now}
            seen |= new
    finally:
        codes = [driver.close() for driver in drivers]
    assert codes == [0, 0]

    arrived = [mail["Message-ID"] for mail in mail_to_sink.received()]
    assert len(arrived) == len(set(arrived)) == 500, "every mail exactly once"
    assert set(arrived) == set(due_by_message_id)
    assert sum(sent_by) == 500 and min(sent_by) > 0, f"both processes shared the work: {sent_by}"
    assert Outreach.objects.filter(status=Outreach.Status.SENT).count() == 500
    assert all(o.sent_at >= o.scheduled_for for o in Outreach.objects.all())
    assert Variant.objects.get(pk=variant.pk).sends == 500
    assert OutboxEvent.objects.filter(event_type="outreach.sent").count() == 500


def test_a_recipient_suppressed_after_scheduling_is_cancelled_with_the_reason_and_not_mailed(mail_to_sink):
    now = timezone.now()
    kept, suppressed, by_domain = _queue(VariantFactory(), [now - timedelta(minutes=1)] * 3)
    suppression_add(kind=Suppression.Kind.ADDRESS, value=suppressed.to_email, reason="unsubscribed")
    other = "elsewhere.example"
    Outreach.objects.filter(pk=by_domain.pk).update(
        to_email=f"someone@{other}", recipient_key=f"someone@{other}", recipient_domain=other
    )
    suppression_add(kind=Suppression.Kind.DOMAIN, value=other, reason="staff")

    report = dispatch_due(now=now, limit=10)

    assert (report.sent, report.cancelled) == (1, 2)
    assert [mail["To"] for mail in mail_to_sink.received()] == [kept.to_email]
    for row, reason in ((suppressed, "the address is suppressed"), (by_domain, "elsewhere.example is suppressed")):
        row.refresh_from_db()
        assert row.status == Outreach.Status.CANCELLED and row.cancelled_at == now
        assert reason in row.error and row.sent_at is None
    assert Variant.objects.get(pk=kept.variant_id).sends == 1


class RefusingSink(SmtpSink):
    """A real SMTP server that refuses recipients whose address starts with "gone"."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.startswith("gone"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_recipient_the_server_refuses_fails_the_row_and_its_lead_and_the_rest_go_out(settings):
    sink = RefusingSink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    now = timezone.now()
    kept, refused = _queue(VariantFactory(), [now, now])
    Outreach.objects.filter(pk=refused.pk).update(to_email="gone@bigco.example", recipient_key="gone@bigco.example")
    try:
        report = dispatch_due(now=now, limit=10)
        assert (report.sent, report.failed) == (1, 1)
        assert [m["To"] for m in sink.received()] == [kept.to_email]
    finally:
        sink.stop()
    refused.refresh_from_db()
    assert refused.status == Outreach.Status.FAILED and "recipient refused" in refused.error
    assert Lead.objects.get(pk=refused.lead_id).status == Lead.Status.FAILED
    assert OutboxEvent.objects.filter(event_type="outreach.sent").count() == 1


def test_a_lead_snoozed_after_scheduling_is_not_mailed(mail_to_sink):
    now = timezone.now()
    [row] = _queue(VariantFactory(), [now])
    Lead.objects.filter(pk=row.lead_id).update(status=Lead.Status.SNOOZED)
    assert dispatch_due(now=now, limit=10).cancelled == 1
    row.refresh_from_db()
    assert (row.status, row.error) == (Outreach.Status.CANCELLED, "the lead is snoozed")
    assert mail_to_sink.received() == []


def test_a_pending_mail_with_an_old_claim_is_resent_under_its_message_id_and_a_fresh_claim_is_not(
    mail_to_sink, settings
):
    settings.OUTREACH_DISPATCH_CLAIM_TIMEOUT_SECONDS = 300
    now, variant = timezone.now(), VariantFactory()
    [interrupted] = _queue(
        variant, [now - timedelta(hours=1)], status=Outreach.Status.PENDING, claimed_at=now - timedelta(seconds=301)
    )
    [in_flight] = _queue(
        variant,
        [now - timedelta(hours=1)],
        domain="other.example",
        status=Outreach.Status.PENDING,
        claimed_at=now - timedelta(seconds=30),
    )

    assert dispatch_due(now=now, limit=10).sent == 1

    [mail] = mail_to_sink.received()
    assert (mail["Message-ID"], mail["To"]) == (interrupted.message_id, interrupted.to_email)
    interrupted.refresh_from_db()
    in_flight.refresh_from_db()
    assert interrupted.status == Outreach.Status.SENT
    assert (in_flight.status, in_flight.claimed_at) == (Outreach.Status.PENDING, now - timedelta(seconds=30))


def test_while_sending_is_paused_nothing_is_sent_and_the_pause_is_logged_once(mail_to_sink, caplog):
    now = timezone.now()
    rows = _queue(VariantFactory(), [now - timedelta(minutes=5)] * 2)
    pause = SendingPause.objects.create(reason="complaint rate 0.5% over 0.3%")
    with caplog.at_level(logging.WARNING, logger="leads.services.dispatch"):
        first, second = dispatch_due(now=now, limit=10), dispatch_due(now=now, limit=10)
    assert first.paused and second.paused and first.sent == second.sent == 0
    assert mail_to_sink.received() == []
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.SCHEDULED}
    assert [r.getMessage() for r in caplog.records].count(
        "sending is paused (complaint rate 0.5% over 0.3%): dispatch sends nothing until staff resume it"
    ) == 1

    SendingPause.objects.filter(pk=pause.pk).update(in_force=None, resumed_at=now, resumed_by="staff")
    assert dispatch_due(now=now, limit=10).sent == len(rows)
    assert len(mail_to_sink.received()) == 2


def test_a_mail_server_that_is_down_leaves_the_mail_pending_and_it_goes_once_the_server_is_back(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    settings.EMAIL_TIMEOUT = 2
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    now = timezone.now()
    rows = _queue(VariantFactory(), [now - timedelta(minutes=1)] * 2)

    down = dispatch_due(now=now, limit=10)

    assert (down.sent, down.failed, down.deferred) == (0, 0, 2) and down.error is not None
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.PENDING}
    sink = SmtpSink(port=settings.EMAIL_PORT).start()
    try:
        back = dispatch_due(now=now, limit=10)
        assert back.sent == 2 and back.error is None
        assert sorted(m["Message-ID"] for m in sink.received()) == sorted(r.message_id for r in rows)
    finally:
        sink.stop()


def test_run_pipeline_dispatch_sends_what_is_due_beats_its_probe_and_stops_cleanly_on_sigterm(
    broker, smtp_sink, tmp_path
):
    [row] = _queue(VariantFactory(), [timezone.now() - timedelta(minutes=1)])
    probe_port = free_port()
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"],
        bootstrap=broker.bootstrap,
        smtp_port=smtp_sink.port,
        PIPELINE_PROBE_PORT=str(probe_port),
        OUTREACH_DISPATCH_INTERVAL_SECONDS="0.2",
    )
    process = PipelineProcess("dispatch", env, tmp_path).start()
    try:
        wait_until(lambda: len(smtp_sink.received()) == 1, timeout=60, what="the due mail at the SMTP server")
        assert smtp_sink.received()[0]["Message-ID"] == row.message_id
        with urllib.request.urlopen(f"http://127.0.0.1:{probe_port}/health/readiness", timeout=5) as answer:
            assert "dispatch" in json.load(answer)["loops"]
    finally:
        code = process.terminate()
    assert code == 0, process.log()
    assert "dispatch stopped" in process.log()
    assert Outreach.objects.get(pk=row.pk).status == Outreach.Status.SENT


# --- the embedded default -------------------------------------------------------------------


def _ticker_alive() -> bool:
    return any(thread.name == "dispatch-ticker" and thread.is_alive() for thread in threading.enumerate())


def test_in_process_an_outreach_batch_dispatches_what_is_due_and_a_ticker_sends_what_falls_due_later(
    mail_to_sink, settings
):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""  # the in-process bus
    settings.OUTREACH_DISPATCH_INTERVAL_SECONDS = 0.2
    now = timezone.now()
    due, later = _queue(VariantFactory(), [now - timedelta(minutes=1), now + timedelta(seconds=2)])

    def queued_mail() -> list[str]:
        return [m["Message-ID"] for m in mail_to_sink.received() if m["To"].endswith("@bigco.example")]

    try:
        with transaction.atomic():  # an outreach batch, through the in-process bus after commit
            lead_emit_scored(LeadFactory(status=Lead.Status.SCORED, score=0.9))
        assert queued_mail() == [due.message_id]  # at once, after the batch (and the batch's own mail)
        assert _ticker_alive()
        wait_until(lambda: len(queued_mail()) == 2, timeout=30, what="the later mail from the ticker")
        assert queued_mail() == [due.message_id, later.message_id]
        wait_until(lambda: not _ticker_alive(), timeout=10, what="the ticker to end with the queue empty")
    finally:
        ticker_stop()
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.SENT}


def test_run_pipeline_all_without_kafka_dispatches_and_stops_cleanly_on_sigterm(smtp_sink, tmp_path):
    [row] = _queue(VariantFactory(), [timezone.now() - timedelta(minutes=1)])
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"],
        bootstrap="",
        smtp_port=smtp_sink.port,
        OUTREACH_DISPATCH_INTERVAL_SECONDS="0.2",
    )
    process = PipelineProcess("all", env, tmp_path).start()
    try:
        wait_until(lambda: len(smtp_sink.received()) == 1, timeout=60, what="the due mail at the SMTP server")
    finally:
        code = process.terminate()
    assert code == 0, process.log()
    assert smtp_sink.received()[0]["Message-ID"] == row.message_id


def test_run_pipeline_dispatch_waits_out_a_mail_server_that_is_down_and_sends_once_it_is_back(broker, tmp_path):
    [row] = _queue(VariantFactory(), [timezone.now() - timedelta(minutes=1)])
    smtp_port, probe_port = free_port(), free_port()
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"],
        bootstrap=broker.bootstrap,
        smtp_port=smtp_port,  # nothing listens yet
        PIPELINE_PROBE_PORT=str(probe_port),
        PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS="1",
        OUTREACH_DISPATCH_INTERVAL_SECONDS="0.2",
        EMAIL_TIMEOUT_SECONDS="2",
    )
    process = PipelineProcess("dispatch", env, tmp_path).start()
    sink = None
    try:

        def readiness() -> tuple[int, dict]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{probe_port}/health/readiness", timeout=5) as answer:
                    return answer.status, json.load(answer)
            except urllib.error.HTTPError as error:
                return error.code, json.load(error)
            except OSError:
                return 0, {}

        wait_until(lambda: readiness()[0] == 503, timeout=60, what="readiness to name the mail outage")
        assert readiness()[1]["loops"]["dispatch"]["waiting_for"]
        assert Outreach.objects.get(pk=row.pk).status == Outreach.Status.PENDING
        sink = SmtpSink(port=smtp_port).start()
        wait_until(lambda: len(sink.received()) == 1, timeout=60, what="the mail once the server is back")
        wait_until(lambda: readiness()[0] == 200, timeout=30, what="readiness back")
    finally:
        code = process.terminate()
        if sink is not None:
            sink.stop()
    assert code == 0, process.log()
    assert [m["Message-ID"] for m in sink.received()] == [row.message_id]
    assert Outreach.objects.get(pk=row.pk).status == Outreach.Status.SENT
    assert process.log().count("a dependency is unavailable") == 1
