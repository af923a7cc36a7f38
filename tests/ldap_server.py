"""A real OpenLDAP server for tests: Debian's slapd on free local ports, in a throwaway directory.

`LdapServer.start(workdir)` writes an old-style `slapd.conf` (core, cosine, nis, inetorgperson
and Microsoft's `msuser` schema, so Active-Directory-shaped entries can be stored), a self-signed
CA and server certificate for `ldaps://`, an `mdb` database under `workdir`, starts
`slapd -d 0` in the foreground (this process owns it) and loads the suffix
`dc=vouchsafe-test,dc=example` with `ou=people`, `ou=groups`, `ou=services` and the service
account the connector binds as. Tests add their own users with `add_person` / `add_ad_user` so
they never share an entry. `stop()` kills slapd.

There is no skip: when `/usr/sbin/slapd` is missing the fixture fails and says how to install it
(`scripts/services.sh` does).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldap3 import BASE, MODIFY_ADD, Connection, Server

SLAPD = "/usr/sbin/slapd"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"
SUFFIX = "dc=vouchsafe-test,dc=example"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret-for-tests"  # the throwaway server's root DN, nothing else
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=vouchsafe,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-bind-password-for-tests"
TAP_GROUP = f"cn=vouchsafe-temporary-access,{GROUPS}"
AD_TAP_GROUP = f"cn=vouchsafe-tap-ad,{GROUPS}"
PLACEHOLDER = f"cn=placeholder,{SUFFIX}"  # groupOfNames needs at least one member
OLD_PASSWORD = "old password 1"  # every test user's password before a recovery
PWD_LAST_SET = "133500000000000000"  # an AD FILETIME in 2024
AD_SECURITY_DESCRIPTOR = b"\x01\x00\x04\x80"  # msuser's mstop MUSTs one; any bytes do here

INSTALL_HINT = (
    "Debian's slapd is not installed at /usr/sbin/slapd; the connector tests run a real "
    "OpenLDAP server. Run scripts/services.sh (it runs `DEBIAN_FRONTEND=noninteractive "
    "apt-get install -y --no-install-recommends slapd ldap-utils`)."
)

_users = itertools.count(1)


def ssha(password: str) -> bytes:
    """A `{SSHA}` userPassword value for `password`, as slappasswd makes it."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - LDAP's scheme
    return b"{SSHA}" + base64.b64encode(digest + salt)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _conf(workdir: Path, tls: Path) -> str:
    schemas = "\n".join(
        f"include {SCHEMA_DIR}/{name}.schema"
        for name in ("core", "cosine", "nis", "inetorgperson", "msuser")
    )
    return f"""{schemas}
pidfile {workdir}/slapd.pid
argsfile {workdir}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb
TLSCACertificateFile {tls}/ca.pem
TLSCertificateFile {tls}/server.pem
TLSCertificateKeyFile {tls}/server.key

database mdb
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {workdir}/db
maxsize 67108864

access to attrs=userPassword,unicodePwd
  by dn.exact="{SERVICE_DN}" write
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="{SERVICE_DN}" write
  by * read
"""


def _make_certificates(tls: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (openssl CLI)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is needed to make the test server's TLS certificate.")
    tls.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=Vouchsafe test CA", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (tls / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")  # fmt: skip
    # A second CA that signed nothing: a client trusting only it must refuse the server.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=Some other CA", "-keyout", "other-ca.key", "-out", "other-ca.pem")  # fmt: skip


@dataclass
class LdapServer:
    workdir: Path
    port: int = 0
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}/"

    @property
    def tls_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}/"

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "tls" / "ca.pem")

    @property
    def other_ca_file(self) -> str:
        return str(self.workdir / "tls" / "other-ca.pem")

    @classmethod
    def start(cls, workdir: Path) -> LdapServer:
        if not os.access(SLAPD, os.X_OK):
            raise FileNotFoundError(INSTALL_HINT)
        server = cls(workdir=workdir)
        (workdir / "db").mkdir(parents=True)
        _make_certificates(workdir / "tls")
        (workdir / "slapd.conf").write_text(_conf(workdir, workdir / "tls"))
        for _attempt in range(5):  # a port taken between free_port() and slapd's bind: retry
            server.port, server.tls_port = free_port(), free_port()
            if server._launch():
                server._load()
                return server
        raise RuntimeError("slapd did not start:\n" + "\n".join(server.log[-20:]))

    def _launch(self) -> bool:
        stderr = open(self.workdir / "slapd.log", "ab")  # noqa: SIM115 - slapd keeps writing
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(self.workdir / "slapd.conf"),
             "-h", f"{self.uri} {self.tls_uri}"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
        stderr.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.append((self.workdir / "slapd.log").read_text(errors="replace"))
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    # --- data -------------------------------------------------------------------------------

    def admin(self) -> Connection:
        """A bound connection as the root DN (to set up and read back entries)."""
        conn = Connection(
            Server("127.0.0.1", port=self.port), ROOT_DN, ROOT_PASSWORD, raise_exceptions=True
        )
        conn.bind()
        return conn

    def _load(self) -> None:
        with self.admin() as conn:
            conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "vouchsafe-test", "o": "Test"})
            conn.add(PLACEHOLDER, ["organizationalRole"], {"cn": "placeholder"})
            for ou in ("people", "groups", "services"):
                conn.add(f"ou={ou},{SUFFIX}", ["organizationalUnit"], {"ou": ou})
            conn.add(
                SERVICE_DN,
                ["person"],
                {"cn": "vouchsafe", "sn": "Vouchsafe", "userPassword": ssha(SERVICE_PASSWORD)},
            )
            conn.add(TAP_GROUP, ["groupOfNames"], {"cn": "vouchsafe-temporary-access",
                                                   "member": [PLACEHOLDER]})  # fmt: skip
            conn.add(
                AD_TAP_GROUP,
                ["group"],
                {
                    "cn": "vouchsafe-tap-ad",
                    "groupType": "-2147483646",
                    "instanceType": "4",
                    "nTSecurityDescriptor": AD_SECURITY_DESCRIPTOR,
                    "objectCategory": f"cn=Group,cn=Schema,cn=Configuration,{SUFFIX}",
                },
            )

    def add_person(
        self, *, password: str | None = OLD_PASSWORD, shadow: bool = False, **extra: Any
    ) -> tuple[str, str, str]:
        """A new inetOrgPerson under ou=people; (dn, uid, employeeNumber)."""
        n = next(_users)
        uid, number = f"user{n}-{os.getpid()}", f"E{n:05d}"
        classes = ["inetOrgPerson", *(["shadowAccount"] if shadow else [])]
        attributes: dict[str, Any] = {
            "uid": uid,
            "cn": f"User {n}",
            "sn": f"Surname{n}",
            "mail": f"{uid}@vouchsafe-test.example",
            "employeeNumber": number,
            **({"userPassword": ssha(password)} if password is not None else {}),
            **extra,
        }
        if shadow:
            attributes.setdefault("shadowLastChange", "19700")
        dn = f"uid={uid},{PEOPLE}"
        with self.admin() as conn:
            conn.add(dn, classes, attributes)
        return dn, uid, number

    def add_ad_user(
        self, *, user_account_control: int = 0x10200, pwd_last_set: str = PWD_LAST_SET
    ) -> tuple[str, str]:
        """A new Active-Directory-shaped `user` (Microsoft's schema); (dn, userPrincipalName)."""
        n = next(_users)
        upn = f"ad{n}-{os.getpid()}@corp.vouchsafe-test.example"
        dn = f"cn=AD User {n},{PEOPLE}"
        with self.admin() as conn:
            conn.add(
                dn,
                ["user"],
                {
                    "cn": f"AD User {n}",
                    "sn": f"Surname{n}",
                    "instanceType": "4",
                    "nTSecurityDescriptor": AD_SECURITY_DESCRIPTOR,
                    "objectCategory": f"cn=Person,cn=Schema,cn=Configuration,{SUFFIX}",
                    "userPrincipalName": upn,
                    "mail": upn,  # searchable: msuser's userPrincipalName has no equality rule
                    "userAccountControl": str(user_account_control),
                    "pwdLastSet": pwd_last_set,
                    "lockoutTime": "133600000000000000",
                    "unicodePwd": '"Old-Passw0rd!"'.encode("utf-16-le"),
                },
            )
        return dn, upn

    def add_member(self, group_dn: str, member_dn: str) -> None:
        with self.admin() as conn:
            conn.modify(group_dn, {"member": [(MODIFY_ADD, [member_dn])]})

    def read(self, dn: str) -> dict[str, list[bytes]]:
        """Every user and change-tracking attribute of `dn`, raw, with names lower-cased."""
        with self.admin() as conn:
            conn.search(dn, "(objectClass=*)", BASE, attributes=["*", "entryCSN"])
            [entry] = conn.response
            return {
                name.lower(): sorted(values) for name, values in entry["raw_attributes"].items()
            }

    def members(self, group_dn: str) -> set[str]:
        with self.admin() as conn:
            conn.search(group_dn, "(objectClass=*)", BASE, attributes=["member"])
            [entry] = conn.response
            return {value.decode().lower() for value in entry["raw_attributes"].get("member", [])}

    def can_bind(self, dn: str, password: str) -> bool:
        conn = Connection(Server("127.0.0.1", port=self.port), dn, password)
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()
