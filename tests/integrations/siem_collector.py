"""A real syslog collector for the SIEM stream tests: Debian's rsyslogd over TLS (RFC 5425).

`make_pki` makes a throwaway CA and a server certificate for localhost with `cryptography`.
`Collector` runs `rsyslogd -n` on a free port with the OpenSSL network driver and octet-
counted framing, and writes each message it receives on our input as one JSON line (rsyslog's
own view of it: APP-NAME, MSGID, structured data, MSG and the raw message) to a file in tmp.
Control characters are kept as received, so a line break that reached the wire would show.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RSYSLOGD = "/usr/sbin/rsyslogd"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool, hosts=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        names = [x509.DNSName(host) for host in hosts if not host[0].isdigit()]
        names += [x509.IPAddress(ipaddress.ip_address(h)) for h in hosts if h[0].isdigit()]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def ca_certificate_pem(common_name: str = "Unrelated Test CA") -> str:
    """A CA certificate of its own (for a body that validates, or a CA the collector's
    certificate does not chain to)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _pem(_certificate(common_name, common_name, key.public_key(), key, ca=True))


@dataclass(frozen=True)
class Pki:
    ca_pem: str
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_pki(directory: Path, *, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("SIEM Test CA", "SIEM Test CA", ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        hosts[0], "SIEM Test CA", server_key.public_key(), ca_key, ca=False, hosts=hosts
    )
    pki = Pki(_pem(ca), directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_text(pki.ca_pem)
    pki.cert_file.write_text(_pem(server))
    pki.key_file.write_bytes(_key_pem(server_key))
    return pki


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_FIELDS = {
    "app": 'property(name="app-name" format="json")',
    "msgid": 'property(name="msgid" format="json")',
    "sd": 'property(name="structured-data" format="json")',
    "pri": 'property(name="pri")',
    "hostname": 'property(name="hostname" format="json")',
    "time": 'property(name="timereported" dateFormat="rfc3339" format="json")',
    "msg": 'property(name="msg" format="json")',
    "raw": 'property(name="rawmsg" format="json")',
}


def _json_template() -> str:
    """One JSON object per line; rsyslog's `format="json"` escapes each property."""
    parts = []
    for index, (name, prop) in enumerate(_FIELDS.items()):
        text = ("{" if index == 0 else '",') + f'"{name}":"'
        parts.append(f"constant(value={json.dumps(text)}) {prop}")
    parts.append(f"constant(value={json.dumps(chr(34) + '}' + chr(10))})")
    return "\n  ".join(parts)


class Collector:
    """rsyslogd on 127.0.0.1:`port` over TLS, writing what arrives to `output`."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.directory = directory
        self.pki = pki
        self.port = free_port()
        self.output = directory / "received.jsonl"
        self.config = directory / "rsyslog.conf"
        self.process: subprocess.Popen | None = None
        self.config.write_text(self._config())

    def _config(self) -> str:
        return f"""
global(
  workDirectory="{self.directory}"
  maxMessageSize="64k"
  parser.escapeControlCharactersOnReceive="off"
  defaultNetstreamDriver="ossl"
  defaultNetstreamDriverCAFile="{self.pki.ca_file}"
  defaultNetstreamDriverCertFile="{self.pki.cert_file}"
  defaultNetstreamDriverKeyFile="{self.pki.key_file}"
)
module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="received" type="list") {{
  {_json_template()}
}}
ruleset(name="siem") {{
  action(type="omfile" file="{self.output}" template="received")
}}
input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="siem")
"""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.config), "-i", str(self.directory / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "rsyslogd exited: check its configuration"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"rsyslogd did not listen on {self.port}")

    def stop(self) -> None:
        """SIGTERM: rsyslogd writes out what it has read, then exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def records(self) -> list[dict[str, str]]:
        if not self.output.exists():
            return []
        return [json.loads(line) for line in self.output.read_text().splitlines()]

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, str]]:
        """At least `count` records (rsyslog writes each batch when it is done with it)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.05)
