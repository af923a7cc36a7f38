"""The audit chain streamed to a SIEM (R-51): a real rsyslogd over TLS, a real Celery worker.

The collector (`siem_collector.Collector`) is Debian's rsyslogd with its OpenSSL driver,
started per test on a free port with certificates made here; what it writes is its own parse
of each message. Nothing is mocked: a "crash" is our own send raising after the collector has
read a batch, and a collector going down mid-stream is rsyslogd stopped between batches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from audit.context import Actor, ActorType
from audit.models import AuditEvent
from audit.services import record
from integrations.models import SiemCursor, SiemDestination
from integrations.siem import formats, stream
from integrations.siem.selectors import siem_status
from integrations.siem.services import siem_destination_remove, siem_destination_set
from tenants.choices import Role
from tenants.exceptions import PolicyDenied
from tenants.models import Tenant

from ..api.objects import staff_session
from ..factories import make_tenant, staff
from ..worker import routed_worker
from .siem_collector import Collector, ca_certificate_pem, make_pki

HOSTILE = "eve|x=1 \\ cs1=other\nCEF:0|Evil|Corp|1|forged|Forged|10|suser=root\r\n<13>1 - fake"
SEQ = re.compile(r'seq="(\d+)"')


@pytest.fixture
def collector(tmp_path) -> Iterator[Collector]:
    server = Collector(tmp_path, make_pki(tmp_path))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _destination(tenant: Tenant, collector: Collector, *, format: str = "cef", ca_pem=None):
    admin = staff(Role.TENANT_ADMIN, tenant=tenant)
    return siem_destination_set(
        actor=admin,
        tenant=tenant,
        host="localhost",
        port=collector.port,
        format=format,
        ca_pem=ca_pem or collector.pki.ca_pem,
    )


def _emit(tenant: Tenant, *, label: str = "detector", data=None) -> AuditEvent:
    with transaction.atomic():
        return record(
            action="event.ingested",
            actor=Actor(id="42", label=label, type=ActorType.INTEGRATION),
            tenant=tenant,
            data={"note": "ok"} if data is None else data,
        )


def _chain(tenant: Tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant).order_by("seq"))


def _of(records: list[dict], tenant: Tenant) -> list[dict]:
    return [r for r in records if f'tenant="{tenant.slug}"' in r["sd"]]


def _seqs(records: list[dict]) -> list[int]:
    return [int(SEQ.search(r["sd"]).group(1)) for r in records]


def cef_parts(msg: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A CEF message as a collector's parser reads it: the six header fields after `CEF:0`,
    then the extension's (key, value) pairs, every escape undone."""
    assert msg.startswith("CEF:0|"), msg
    header, field, index = [], "", len("CEF:0|")
    while len(header) < 6:
        char = msg[index]
        if char == "\\":
            field += msg[index + 1]
            index += 2
            continue
        if char == "|":
            header.append(field)
            field = ""
        else:
            field += char
        index += 1
    extension = msg[index:]
    segments: list[str] = [""]
    index = 0
    while index < len(extension):
        char = extension[index]
        if char == "\\":
            following = extension[index + 1]
            segments[-1] += {"n": "\n", "r": "\r"}.get(following, following)
            index += 2
            continue
        if char == "=":
            segments.append("")
        else:
            segments[-1] += char
        index += 1
    keys, values = [segments[0]], []
    for segment in segments[1:-1]:
        value, _, key = segment.rpartition(" ")
        values.append(value)
        keys.append(key)
    values.append(segments[-1])
    return header, list(zip(keys, values, strict=True))


def _assert_matches(record_: dict, event: AuditEvent, tenant: Tenant, format: str) -> None:
    """rsyslog's parse of one message against the stored event."""
    assert record_["app"] == "vouchsafe"
    assert record_["msgid"] == event.action[:32]
    assert record_["sd"] == (
        f'[vouchsafe@32473 tenant="{tenant.slug}" seq="{event.seq}" hash="{event.hash}" '
        f'prev="{event.prev_hash}" action="{event.action}"]'
    )
    sent_at = datetime.fromisoformat(record_["time"].replace("Z", "+00:00"))
    assert sent_at == event.created_at.astimezone(UTC)  # microseconds included
    assert "\n" not in record_["msg"] and "\r" not in record_["msg"]
    if format == "cef":
        header, pairs = cef_parts(record_["msg"])
        fields = dict(pairs)
        assert header[:4] == ["Vouchsafe", "Vouchsafe", "0.1.0", event.action]
        assert [fields["externalId"], fields["cs1"], fields["cs2"]] == [
            str(event.seq),
            tenant.slug,
            event.hash,
        ]
        assert fields["suser"] == event.actor_label
        assert json.loads(fields["cs6"]) == event.data
    else:
        body = json.loads(record_["msg"])
        assert body["metadata"]["uid"] == str(event.seq)
        assert body["metadata"]["tenant_uid"] == tenant.slug
        assert body["time"] == int(event.created_at.timestamp() * 1000)
        assert body["actor"]["user"]["name"] == event.actor_label
        assert body["unmapped"]["data"] == event.data
        assert body["unmapped"]["hash"] == event.hash


# --- through a real worker -------------------------------------------------------------------

TASKS = ("integrations.tasks.siem_stream_task", "integrations.tasks.siem_stream_sweep_task")


@pytest.fixture
def worker_queue(committed) -> Iterator[str]:
    """A worker on its own queue; the tasks this module queues are routed to it."""
    with routed_worker(TASKS, "test-siem") as queue:
        yield queue


def test_cef_and_ocsf_events_arrive_intact_and_in_order_through_a_worker(worker_queue, collector):
    """Each committed event queues the tenant's stream task; the worker sends every event of
    the chain (the ones before the destination too), oldest first."""
    cef, ocsf = make_tenant(), make_tenant()
    _destination(cef, collector, format="cef")
    _destination(ocsf, collector, format="ocsf")
    for index in range(3):
        _emit(cef, data={"n": index, "text": "café ✓"})
        _emit(ocsf, data={"n": index, "nested": {"list": [1, 2.5, None]}})

    expected = {cef: _chain(cef), ocsf: _chain(ocsf)}
    total = sum(len(events) for events in expected.values())
    records = collector.wait_for(total, timeout=30)
    for tenant, format in ((cef, "cef"), (ocsf, "ocsf")):
        mine = _of(records, tenant)
        assert _seqs(mine) == [event.seq for event in expected[tenant]], format
        for record_, event in zip(mine, expected[tenant], strict=True):
            _assert_matches(record_, event, tenant, format)
        assert SiemCursor.objects.get(tenant=tenant).seq == expected[tenant][-1].seq
    assert len(records) == total


# --- in process, against the real collector ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("format", ["cef", "ocsf"])
def test_hostile_text_cannot_forge_a_field_or_a_record(collector, format):
    tenant = make_tenant()
    _destination(tenant, collector, format=format)
    hostile = _emit(tenant, label=HOSTILE, data={HOSTILE: HOSTILE, "k": "a=b|c\\d\u2028e"})

    sent = stream.siem_stream(tenant_id=tenant.pk)

    chain = _chain(tenant)
    records = collector.wait_for(len(chain))
    assert sent == len(chain) == len(records)  # no record more than events
    assert _seqs(records) == [event.seq for event in chain]
    last = records[-1]
    _assert_matches(last, hostile, tenant, format)
    assert "\u2028" not in last["raw"]
    if format == "cef":
        header, pairs = cef_parts(last["msg"])
        assert len(header) == 6 and header[5] == str(formats.severity_of("event.ingested").cef)
        expected_keys = [key for key, _ in formats.cef_extension(hostile, tenant.slug)]
        assert [key for key, _ in pairs] == expected_keys  # no key added, none split
        assert dict(pairs)["suser"] == HOSTILE  # its "CEF:0|…" is text inside one value
    else:
        assert json.loads(last["msg"])["unmapped"]["data"]["k"] == "a=b|c\\d\u2028e"


@pytest.mark.django_db
@pytest.mark.parametrize("problem", ["another_ca", "another_name"])
def test_a_collector_we_cannot_trust_gets_nothing_and_nothing_is_marked_sent(tmp_path, problem):
    """Its certificate chains to another CA than the one given, or names another host."""
    if problem == "another_ca":
        pki, trusted = make_pki(tmp_path), ca_certificate_pem()
    else:
        pki = make_pki(tmp_path, hosts=("collector.example",))
        trusted = pki.ca_pem
    server = Collector(tmp_path, pki)
    server.start()
    try:
        tenant = make_tenant()
        _destination(tenant, server, ca_pem=trusted)
        assert stream.siem_stream(tenant_id=tenant.pk) == 0
        assert stream.siem_stream(tenant_id=tenant.pk) == 0  # in its backoff: not even tried
        assert server.wait_for(1, timeout=1) == []
    finally:
        server.stop()
    destination = SiemDestination.objects.get(tenant=tenant)
    assert destination.failures == 1 and destination.next_attempt_at is not None
    assert "certificate was refused" in destination.last_error
    assert not SiemCursor.objects.filter(tenant=tenant, seq__gt=0).exists()
    [failed] = AuditEvent.objects.filter(tenant=tenant, action="siem.delivery_failed")
    assert failed.data["error"] == destination.last_error


@pytest.mark.django_db
def test_collector_down_mid_stream_then_back_loses_nothing_and_lag_is_right(
    collector, monkeypatch, settings
):
    settings.SIEM_BACKOFF_BASE_SECONDS = 0  # a retry is due at once
    tenant = make_tenant()
    _destination(tenant, collector)
    for index in range(5):
        _emit(tenant, data={"n": index})
    first_batch = 3
    real_send = stream.send_batch

    def send_then_stop_the_collector(*args, **kwargs):
        real_send(*args, **kwargs)
        collector.stop()  # down after the first batch got through

    monkeypatch.setattr(stream, "send_batch", send_then_stop_the_collector)
    stream.siem_stream(tenant_id=tenant.pk, batch=first_batch)
    monkeypatch.setattr(stream, "send_batch", real_send)

    chain = _chain(tenant)
    status = siem_status(tenant=tenant)
    assert status.sent_seq == first_batch
    unsent = [event for event in chain if event.seq > first_batch]
    assert status.behind == len(unsent) == chain[-1].seq - first_batch
    assert status.oldest_unsent_at == unsent[0].created_at
    assert status.state == "failing" and "refused" in status.destination.last_error

    assert stream.siem_stream(tenant_id=tenant.pk) == 0  # still down: one more failure
    assert SiemDestination.objects.get(tenant=tenant).failures == 2
    failed = AuditEvent.objects.filter(tenant=tenant, action="siem.delivery_failed")
    assert failed.count() == 1  # recorded when it began to fail, not per retry

    collector.start()
    stream.siem_stream(tenant_id=tenant.pk)
    stream.siem_stream(tenant_id=tenant.pk)  # the siem.delivery_resumed event it recorded
    chain = _chain(tenant)
    records = collector.wait_for(len(chain))
    assert sorted(set(_seqs(records))) == [event.seq for event in chain]  # nothing lost
    assert _seqs(records) == sorted(_seqs(records))
    assert AuditEvent.objects.filter(tenant=tenant, action="siem.delivery_resumed").count() == 1
    status = siem_status(tenant=tenant)
    assert (status.state, status.behind, status.oldest_unsent_at) == ("up_to_date", 0, None)


@pytest.mark.django_db
def test_a_resend_after_a_crash_repeats_events_with_the_same_seq_and_bytes(collector, monkeypatch):
    tenant = make_tenant()
    _destination(tenant, collector)
    _emit(tenant)
    real_send = stream.send_batch

    def send_then_crash(*args, **kwargs):
        real_send(*args, **kwargs)
        raise RuntimeError("the worker died before its transaction committed")

    monkeypatch.setattr(stream, "send_batch", send_then_crash)
    with pytest.raises(RuntimeError):
        stream.siem_stream(tenant_id=tenant.pk)
    monkeypatch.setattr(stream, "send_batch", real_send)
    assert SiemCursor.objects.filter(tenant=tenant, seq__gt=0).count() == 0

    chain = _chain(tenant)
    assert stream.siem_stream(tenant_id=tenant.pk) == len(chain)
    records = collector.wait_for(2 * len(chain))
    assert sorted(_seqs(records)) == sorted(2 * [event.seq for event in chain])
    by_seq: dict[int, set[str]] = {}
    for record_ in records:
        by_seq.setdefault(_seqs([record_])[0], set()).add(record_["raw"])
    assert all(len(raws) == 1 for raws in by_seq.values())  # a duplicate is the same message


@pytest.mark.django_db
def test_the_sweep_asks_only_for_tenants_with_a_due_destination_behind_their_chain(
    collector, monkeypatch
):
    asked: list[int] = []
    monkeypatch.setattr(stream, "siem_stream_soon", asked.append)
    streaming, silent, waiting = make_tenant(), make_tenant(), make_tenant()
    _destination(streaming, collector)
    destination = _destination(waiting, collector)
    SiemDestination.objects.filter(pk=destination.pk).update(
        next_attempt_at=datetime(2999, 1, 1, tzinfo=UTC)
    )
    _emit(silent)

    stream.siem_stream_lagging()

    assert streaming.pk in asked and silent.pk not in asked and waiting.pk not in asked


# --- the pure mapping ------------------------------------------------------------------------


def _event(action: str, **fields) -> AuditEvent:
    defaults = {
        "seq": 7,
        "action": action,
        "actor_id": "3",
        "actor_label": "alice",
        "actor_type": "human",
        "actor_org": "Acme",
        "data": {"reason": "x"},
        "created_at": datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        "prev_hash": "a" * 64,
        "hash": "b" * 64,
    }
    return AuditEvent(**{**defaults, **fields})


ORIGIN = formats.Origin(hostname="vs.example", product_version="1.2.3", sd_id="vouchsafe@32473")


def test_syslog_message_is_rfc5424_with_octet_counting():
    event = _event("verification.attestation_confirmed")
    framed = formats.frame(event, tenant_slug="acme", format="cef", origin=ORIGIN)
    length, _, message = framed.partition(b" ")
    assert int(length) == len(message)
    assert message.startswith(
        b"<110>1 2025-03-04T05:06:07.891011Z vs.example vouchsafe - "
        b"verification.attestation_confirm "
        b'[vouchsafe@32473 tenant="acme" seq="7" hash="' + b"b" * 64 + b'"'
    )  # MSGID cut to 32 characters; the full action is in the structured data


def test_cef_escapes_what_its_grammar_gives_meaning_to():
    assert formats.cef_value("a=b\\c\nd\re|f") == "a\\=b\\\\c\\nd\\re|f"
    assert formats.cef_header_field("a|b\\c\nd") == "a\\|b\\\\c d"
    assert formats.cef_value("bell\x07 sep\u2028") == "bell\ufffd sep\ufffd"


def test_ocsf_classes_and_owasp_names():
    failed = formats.ocsf_event(_event("auth.login_failed"), tenant_slug="t", origin=ORIGIN)
    assert (failed["class_uid"], failed["activity_id"], failed["type_uid"]) == (3002, 1, 300201)
    assert (failed["status"], failed["user"]["name"]) == ("Failure", "alice")
    assert failed["metadata"]["labels"] == ["owasp:authn_login_fail"]
    assert failed["severity"] == "Medium"
    opened = formats.ocsf_event(_event("case.opened"), tenant_slug="t", origin=ORIGIN)
    assert (opened["class_uid"], opened["type_uid"], opened["metadata"]["uid"]) == (0, 99, "7")
    assert opened["time"] == 1741064767891 and opened["metadata"]["version"] == "1.1.0"
    assert "user" not in opened and opened["metadata"]["labels"] == []
    assert formats.severity_of("audit.integrity_violation") is formats.Severity.HIGH


def test_oversized_data_is_replaced_by_its_size_and_hash():
    big = {"blob": "x" * 5000}
    stub = formats.streamed_data(big)
    assert stub["truncated"] is True and stub["chars"] > 5000 and len(stub["sha256"]) == 64


# --- the destination: who may set it, validation, the API ------------------------------------


def _api(user) -> APIClient:
    return staff_session(user)


@pytest.mark.django_db
def test_agent_cannot_set_the_destination(collector):
    tenant = make_tenant()
    agent = staff(Role.AGENT, tenant=tenant)
    body = {"host": "localhost", "port": collector.port, "format": "cef"}
    response = _api(agent).put(
        f"/api/v1/t/{tenant.slug}/siem/", {**body, "ca_pem": collector.pki.ca_pem}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "auth.scope_missing")
    with pytest.raises(PolicyDenied) as refused:
        siem_destination_set(actor=agent, tenant=tenant, ca_pem=collector.pki.ca_pem, **body)
    assert refused.value.code == "role.required"
    assert not SiemDestination.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_another_tenants_siem_is_not_found(collector):
    mine, theirs = make_tenant(), make_tenant()
    _destination(theirs, collector)
    admin = staff(Role.TENANT_ADMIN, tenant=mine)
    client = _api(admin)
    for method in ("get", "put", "delete"):
        response = getattr(client, method)(f"/api/v1/t/{theirs.slug}/siem/", {}, format="json")
        assert response.status_code == 404, (method, response.content)
        assert response.json()["code"] == "not_found"
    assert SiemDestination.objects.filter(tenant=theirs).exists()


@pytest.mark.django_db
def test_admin_sets_reads_and_removes_the_destination_and_an_auditor_reads_it(collector):
    tenant = make_tenant()
    admin = staff(Role.TENANT_ADMIN, tenant=tenant)
    url = f"/api/v1/t/{tenant.slug}/siem/"
    body = {
        "host": "LocalHost.",
        "port": collector.port,
        "format": "ocsf",
        "ca_pem": f"Our collector's CA:\n{collector.pki.ca_pem}",
    }
    response = _api(admin).put(url, body, format="json")
    assert response.status_code == 200, response.content
    shown = response.json()
    assert shown["state"] == "behind" and shown["destination"]["host"] == "localhost"
    assert shown["events_behind"] == shown["head_seq"] > 0 and shown["sent_seq"] == 0
    [event] = AuditEvent.objects.filter(tenant=tenant, action="siem.destination_set")
    assert event.data["ca_sha256"] == shown["ca_sha256"] and event.data["created"] is True

    auditor = _api(staff(Role.AUDITOR, tenant=tenant))
    assert auditor.get(url).json()["destination"]["format"] == "ocsf"
    assert auditor.put(url, body, format="json").status_code == 403

    assert _api(admin).delete(url).status_code == 204
    assert AuditEvent.objects.filter(tenant=tenant, action="siem.destination_removed").exists()
    assert _api(admin).delete(url).status_code == 404
    assert auditor.get(url).json()["state"] == "not_configured"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("host", "bad host!", "siem.host_invalid"),
        ("port", 0, "input.invalid"),
        ("format", "leef", "input.invalid"),
        ("ca_pem", "not a certificate", "siem.ca_invalid"),
        ("ca_pem", "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----", None),
    ],
)
def test_put_explains_what_is_wrong(collector, field, value, code):
    tenant = make_tenant()
    admin = staff(Role.TENANT_ADMIN, tenant=tenant)
    body = {"host": "localhost", "port": 6514, "format": "cef", "ca_pem": collector.pki.ca_pem}
    response = _api(admin).put(
        f"/api/v1/t/{tenant.slug}/siem/", {**body, field: value}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == (code or "siem.ca_has_private_key")
    assert field in response.json()["errors"]
    assert not SiemDestination.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_removing_the_destination_drops_its_cursor(collector):
    tenant = make_tenant()
    _destination(tenant, collector)
    stream.siem_stream(tenant_id=tenant.pk)
    assert SiemCursor.objects.get(tenant=tenant).seq > 0
    siem_destination_remove(actor=staff(Role.TENANT_ADMIN, tenant=tenant), tenant=tenant)
    assert not SiemCursor.objects.filter(tenant=tenant).exists()
    assert not SiemDestination.objects.filter(tenant=tenant).exists()
