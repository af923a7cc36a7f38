"""A real Active Directory domain controller for tests: Debian's Samba, in a throwaway directory.

`SambaDc.start(workdir)` copies a provisioned domain (made once per Samba version by
`samba-tool domain provision` into a cache directory, see `provisioned_domain`), gives the DC a
certificate for 127.0.0.1 from a throwaway CA, and runs `samba -i` in the foreground with only
its LDAP server. Samba's LDAP server has no port setting (389 and 636 are fixed in its source), so
the DC runs in a network namespace of its own (`unshare --net`) and a relay thread in this process
copies bytes between a free port on 127.0.0.1 and the DC's 389 / 636; TLS is end to end between
the client and Samba. `_load` adds what the connector needs: `OU=People` for the test users, a
service account in the built-in Account Operators group (a help desk's usual delegated account:
it may reset passwords and edit ordinary users and groups; on Windows, AdminSDHolder also keeps it
away from administrators, which Samba does not emulate), a temporary-access group, and an
account-lockout threshold so tests can lock an account for real.
`stop()` ends the DC; the DC also ends by itself when this process dies (its stdin closes).

There is no skip: when Samba is missing the fixture fails and says how to install it
(`scripts/services.sh` does).
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from ldap3 import BASE, MODIFY_ADD, MODIFY_REPLACE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from .ldap_server import _make_certificates

SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"
REALM = "VOUCHSAFE-AD.EXAMPLE"
NETBIOS_DOMAIN = "VSAD"
BASE_DN = "DC=vouchsafe-ad,DC=example"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
ADMIN_PASSWORD = "Admin-Passw0rd-for-tests"  # the throwaway domain's Administrator only
PEOPLE = f"OU=People,{BASE_DN}"
SERVICE_DN = f"CN=vouchsafe-svc,CN=Users,{BASE_DN}"
SERVICE_PASSWORD = "Service-Passw0rd-for-tests"
TAP_GROUP = f"CN=vouchsafe-temporary-access,CN=Users,{BASE_DN}"
DOMAIN_ADMINS = f"CN=Domain Admins,CN=Users,{BASE_DN}"
ACCOUNT_OPERATORS = f"CN=Account Operators,CN=Builtin,{BASE_DN}"
OLD_PASSWORD = "Old-Passw0rd-1"  # every test user's password before a recovery
LOCKOUT_THRESHOLD = 3  # bad passwords before the DC locks an account
PROVISION_ARGS = (
    "--server-role=dc",
    "--use-rfc2307",
    "--dns-backend=NONE",
    "--host-name=dc1",
    f"--realm={REALM}",
    f"--domain={NETBIOS_DOMAIN}",
    f"--adminpass={ADMIN_PASSWORD}",
)
UF_NORMAL_ACCOUNT = 0x200
UF_DONT_EXPIRE_PASSWD = 0x10000
GLOBAL_SECURITY_GROUP = "-2147483646"
CLONE_NEWNET = 0x40000000
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vouchsafe-tests"

INSTALL_HINT = (
    "Debian's Samba is not installed (/usr/sbin/samba); the Active Directory tests run a real "
    "Samba AD DC. Run scripts/services.sh (it runs `DEBIAN_FRONTEND=noninteractive apt-get "
    "install -y --no-install-recommends samba samba-dsdb-modules samba-vfs-modules "
    "samba-ad-provision iproute2`)."
)

_users = itertools.count(1)


def provisioned_domain(cache_root: Path) -> Path:
    """A provisioned domain's files, made once per Samba version and provision arguments.

    Provisioning takes seconds of CPU; a copy takes a fraction of one. The directory is built
    under a temporary name and renamed into place, so a concurrent session never sees half of it.
    """
    version = subprocess.run(
        [SAMBA, "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    key = hashlib.sha256("\n".join([version, *PROVISION_ARGS]).encode()).hexdigest()[:16]
    target = cache_root / f"samba-ad-{key}"
    if (target / "private" / "sam.ldb").exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="provisioning-", dir=cache_root))
    try:
        done = subprocess.run(
            [SAMBA_TOOL, "domain", "provision", f"--targetdir={building}", *PROVISION_ARGS],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"samba-tool domain provision failed:\n{done.stderr[-3000:]}")
        with suppress(OSError):  # another session finished first: use theirs
            building.rename(target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def _conf(dc: Path, tls: Path) -> str:
    return f"""[global]
netbios name = DC1
workgroup = {NETBIOS_DOMAIN}
realm = {REALM}
server role = active directory domain controller
server services = ldap
interfaces = 127.0.0.1
bind interfaces only = yes
private dir = {dc}/private
lock directory = {dc}
state directory = {dc}/state
cache directory = {dc}/cache
binddns dir = {dc}/bind-dns
log file = {dc}/samba.log
idmap_ldb:use rfc2307 = yes
tls enabled = yes
tls keyfile = {tls}/server.key
tls certfile = {tls}/server.pem
tls cafile = {tls}/ca.pem
"""


def _enter_network_namespace(path: str) -> None:
    """Move the calling thread (only) into the network namespace at `path` (setns(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(path) as namespace:
        if libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {path}: {os.strerror(errno)}")


class _Relay:
    """Copies bytes between a free port on this host's 127.0.0.1 and `inner_port` on 127.0.0.1
    inside another network namespace. It never looks at the bytes: TLS stays end to end."""

    def __init__(self, namespace: str, inner_port: int) -> None:
        self.inner_port = inner_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        # Connections accepted here are in this namespace; those the thread opens are in the
        # DC's, because it entered it first (and the threads it starts inherit it).
        threading.Thread(target=self._serve, args=(namespace,), daemon=True).start()

    def _serve(self, namespace: str) -> None:
        _enter_network_namespace(namespace)
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed by close()
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.inner_port), timeout=5)
                upstream.settimeout(None)
            except OSError:  # the DC is not listening yet: the client sees the connection end
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket) -> None:
        with client, upstream:
            peer = {client: upstream, upstream: client}
            try:
                while peer:
                    readable, _, _ = select.select(list(peer), [], [])
                    for source in readable:
                        data = source.recv(65536)
                        if data:
                            peer[source].sendall(data)
                        else:  # one side finished sending: pass the half-close on
                            with suppress(OSError):
                                peer[source].shutdown(socket.SHUT_WR)
                            del peer[source]
            except OSError:
                return

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@dataclass
class SambaDc:
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    relays: dict[int, _Relay] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """Plain LDAP (Samba refuses simple binds on it unless StartTLS is done first)."""
        return f"ldap://127.0.0.1:{self.relays[389].port}/"

    @property
    def tls_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.relays[636].port}/"

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "tls" / "ca.pem")

    @property
    def other_ca_file(self) -> str:
        return str(self.workdir / "tls" / "other-ca.pem")

    @classmethod
    def start(cls, workdir: Path, cache_root: Path = CACHE_ROOT) -> SambaDc:
        if not (os.access(SAMBA, os.X_OK) and os.access(SAMBA_TOOL, os.X_OK)):
            raise FileNotFoundError(INSTALL_HINT)
        dc = workdir / "dc"
        shutil.copytree(provisioned_domain(cache_root), dc, symlinks=True)
        _make_certificates(workdir / "tls")
        (workdir / "tls" / "server.key").chmod(0o600)  # Samba refuses a key others can read
        (workdir / "smb.conf").write_text(_conf(dc, workdir / "tls"))
        server = cls(workdir=workdir)
        server._launch()
        try:
            server._load()
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> None:
        log = open(self.workdir / "samba.out", "ab")  # noqa: SIM115 - samba keeps writing
        # `unshare --net` gives the DC a network namespace of its own with only a loopback
        # interface, which starts down. Samba ends on EOF of its stdin, i.e. when we do.
        self.process = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
             SAMBA, "-i", "-M", "single", "--no-process-group", "--debuglevel=1",
             "-s", str(self.workdir / "smb.conf")],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        namespace = f"/proc/{self.process.pid}/ns/net"
        deadline = time.monotonic() + 30
        while os.stat(namespace).st_ino == os.stat("/proc/self/ns/net").st_ino:
            self._check_alive(deadline)  # unshare has not made the namespace yet
            time.sleep(0.01)
        self.relays = {port: _Relay(namespace, port) for port in (389, 636)}
        while True:
            self._check_alive(deadline)
            with suppress(OSError, LDAPException), self.admin():
                return
            time.sleep(0.1)

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is None and time.monotonic() < deadline:
            return
        self.stop()
        output = (self.workdir / "samba.out").read_text(errors="replace")
        raise RuntimeError(f"samba did not start:\n{output[-3000:]}")

    def stop(self) -> None:
        for relay in self.relays.values():
            relay.close()
        self.relays = {}
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stdin:
            self.process.stdin.close()
        self.process = None

    # --- data -------------------------------------------------------------------------------

    def _connect(self, user: str, password: str) -> Connection:
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file)
        server = Server("127.0.0.1", port=self.relays[636].port, use_ssl=True, tls=tls)
        return Connection(server, user, password, raise_exceptions=True, receive_timeout=10)

    def admin(self) -> Connection:
        """A bound LDAPS connection as the domain's Administrator (to set up and read back)."""
        conn = self._connect(ADMIN_DN, ADMIN_PASSWORD)
        conn.bind()
        return conn

    def _load(self) -> None:
        with self.admin() as conn:
            conn.add(PEOPLE, ["organizationalUnit"], {"ou": "People"})
            conn.add(
                SERVICE_DN,
                ["user"],
                {
                    "sAMAccountName": "vouchsafe-svc",
                    "userPrincipalName": f"vouchsafe-svc@{REALM.lower()}",
                    "unicodePwd": _quoted(SERVICE_PASSWORD),
                    "userAccountControl": str(UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD),
                },
            )
            conn.modify(ACCOUNT_OPERATORS, {"member": [(MODIFY_ADD, [SERVICE_DN])]})
            conn.add(
                TAP_GROUP,
                ["group"],
                {
                    "sAMAccountName": "vouchsafe-temporary-access",
                    "groupType": GLOBAL_SECURITY_GROUP,
                },
            )
            conn.modify(BASE_DN, {"lockoutThreshold": [(MODIFY_REPLACE, [LOCKOUT_THRESHOLD])]})

    def add_user(
        self, *, password: str = OLD_PASSWORD, flags: int = UF_NORMAL_ACCOUNT
    ) -> tuple[str, str]:
        """A new enabled user under OU=People with `password`; (dn, userPrincipalName)."""
        n = next(_users)
        name = f"user{n}-{os.getpid()}"
        upn = f"{name}@{REALM.lower()}"
        dn = f"CN={name},{PEOPLE}"
        with self.admin() as conn:
            conn.add(
                dn,
                ["user"],
                {
                    "sAMAccountName": name[:20],
                    "userPrincipalName": upn,
                    "unicodePwd": _quoted(password),
                    "userAccountControl": str(flags),
                },
            )
        return dn, upn

    def add_member(self, group_dn: str, member_dn: str) -> None:
        with self.admin() as conn:
            conn.modify(group_dn, {"member": [(MODIFY_ADD, [member_dn])]})

    def read(self, dn: str, *names: str) -> dict[str, list[str]]:
        """`names` of `dn` as the DC stores them, with names lower-cased."""
        with self.admin() as conn:
            conn.search(dn, "(objectClass=*)", BASE, attributes=list(names))
            [entry] = conn.response
            return {
                name.lower(): sorted(value.decode() for value in values)
                for name, values in entry["raw_attributes"].items()
            }

    def members(self, group_dn: str) -> set[str]:
        with self.admin() as conn:
            conn.search(group_dn, "(objectClass=*)", BASE, attributes=["member"])
            [entry] = conn.response
            return {value.decode().lower() for value in entry["raw_attributes"].get("member", [])}

    def can_bind(self, user: str, password: str) -> bool:
        """Whether the DC accepts `password` for `user` (a DN or a userPrincipalName)."""
        conn = self._connect(user, password)
        conn.raise_exceptions = False
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()


def _quoted(password: str) -> bytes:
    """AD's unicodePwd form of `password`: the quoted string in UTF-16LE."""
    return f'"{password}"'.encode("utf-16-le")
