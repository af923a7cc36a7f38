"""RFC 3161 timestamps of checkpoints from a real TSA: OpenSSL's `openssl ts -reply`, served over
HTTP by the fixture below (the HTTP part is a few lines; the time-stamping is OpenSSL's)."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from audit.checkpoints import Checkpoint, DirectoryStore, canonical_bytes, trusted_keys
from audit.timestamps import TimestampAuthority
from audit.verify import CheckpointSource, verify_chain

from .checkpointing import add_events, sign


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(signing_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def make_tsa(folder: Path, name: str) -> Path:
    """A CA, a TSA certificate it issued, and an `openssl ts` configuration in `folder`."""
    folder.mkdir()
    ca_key, tsa_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate(f"{name} CA", f"{name} CA", ca_key.public_key(), ca_key, ca=True)
    tsa = _certificate(f"{name} TSA", f"{name} CA", tsa_key.public_key(), ca_key, ca=False)
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "tsa.pem").write_bytes(_pem(tsa))
    (folder / "tsa.key").write_bytes(
        tsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(
        f"""[ tsa ]
default_tsa = local
[ local ]
serial = {folder}/serial
crypto_device = builtin
signer_cert = {folder}/tsa.pem
certs = {folder}/ca.pem
signer_key = {folder}/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
    )
    return folder


class _Tsa(BaseHTTPRequestHandler):
    folder: Path

    def do_POST(self) -> None:
        query = self.rfile.read(int(self.headers["Content-Length"]))
        reply = subprocess.run(
            [
                "openssl",
                "ts",
                "-reply",
                "-config",
                str(self.folder / "tsa.cnf"),
                "-queryfile",
                "/dev/stdin",
                "-out",
                "/dev/stdout",
            ],
            input=query,
            capture_output=True,
            check=True,
        ).stdout
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def tsa(tmp_path) -> Iterator[TimestampAuthority]:
    folder = make_tsa(tmp_path / "tsa", "Test")
    handler = type("Handler", (_Tsa,), {"folder": folder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TimestampAuthority(f"http://127.0.0.1:{server.server_port}/", str(folder / "ca.pem"))
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def with_tsa(settings, tsa):
    settings.AUDIT_TSA_URL, settings.AUDIT_TSA_CA_FILE = tsa.url, tsa.ca_file
    return tsa


def check(tenant, stores, trusted, tsa):
    source = CheckpointSource(stores, trusted_keys([trusted]), tsa=tsa)
    return verify_chain(tenant.pk, tenant.slug, checkpoints=source)


def test_each_checkpoint_carries_a_verified_timestamp_of_its_digest(
    tenant, signer, stores, trusted, with_tsa
):
    before = datetime.now(UTC) - timedelta(seconds=2)
    run = sign(signer, stores, tenant)
    assert run.failures == []
    kept = stores[0].get(run.signed[0].chain, run.signed[0].seq)
    assert kept.timestamp
    stated = with_tsa.check(kept.timestamp, kept.digest)
    assert before <= stated <= datetime.now(UTC) + timedelta(seconds=2)
    assert check(tenant, stores, trusted, with_tsa).intact


def _swap_timestamp(store: DirectoryStore, chain: str, seq: int, token: bytes) -> None:
    path = store.path / chain.replace(":", "-") / f"{seq:020d}.json"
    body = json.loads(path.read_text())
    body["timestamp"] = base64.b64encode(token).decode()
    path.chmod(0o644)
    path.write_bytes(canonical_bytes(body))


def test_a_timestamp_moved_from_another_checkpoint_is_refused(
    tenant, signer, stores, trusted, with_tsa
):
    first = sign(signer, stores, tenant).signed[0]
    add_events(tenant, 1)
    second = sign(signer, stores, tenant).signed[0]
    for store in stores:
        _swap_timestamp(store, second.chain, second.seq, first.timestamp)
    report = check(tenant, stores, trusted, with_tsa)
    assert not report.intact
    assert f"checkpoint at seq {second.seq}" in report.reason
    assert "RFC 3161 timestamp does not verify" in report.reason


def test_a_timestamp_from_an_untrusted_tsa_is_refused(
    tenant, signer, stores, trusted, with_tsa, tmp_path
):
    checkpoint = sign(signer, stores, tenant).signed[0]
    other = make_tsa(tmp_path / "rogue", "Rogue")
    rogue = TimestampAuthority(with_tsa.url, str(other / "ca.pem"))
    report = check(tenant, stores, trusted, rogue)
    assert not report.intact
    assert f"checkpoint at seq {checkpoint.seq}" in report.reason


def test_a_tsa_outage_is_reported_and_the_checkpoint_still_published(
    tenant, signer, stores, trusted, settings, tmp_path
):
    folder = make_tsa(tmp_path / "down", "Down")
    settings.AUDIT_TSA_URL = "http://127.0.0.1:9/"  # discard port: nothing answers
    settings.AUDIT_TSA_CA_FILE = str(folder / "ca.pem")
    run = sign(signer, stores, tenant)
    assert [store for store, _, _ in run.failures] == ["tsa"]
    assert "timestamp.unreachable" in run.failures[0][2]
    kept = stores[0].get(run.signed[0].chain, run.signed[0].seq)
    assert isinstance(kept, Checkpoint) and kept.timestamp is None
