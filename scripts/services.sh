#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up: PostgreSQL and Redis on localhost.
# Starts them with this machine kind's commands when they are installed but stopped.
# Installs Debian's OpenLDAP server (slapd) for the connector tests when it is missing; it is
# never started here: the tests start their own on a free port with a throwaway configuration.
# Installs Debian's Samba for the Active Directory tests when it is missing; likewise never
# started here (the tests provision and run their own DC in a network namespace of its own).
# Installs Debian's chromium for the browser tests (Playwright's own download does not work here).
# Installs the test OpenID Provider's npm packages (tests/oidc_provider) with `npm ci`.
set -uo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if [ -z "${DATABASE_URL:-}" ] && ! pg_up; then
  echo "==> Starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  for _ in $(seq 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi
if [ -z "${TEST_CELERY_BROKER_URL:-}" ] && ! redis_up; then
  echo "==> Starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 30); do redis_up && break; sleep 1; done
  redis_up || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
fi
# apt-get install for packages whose install would start a system service (slapd on 389, Samba
# on 389, 445, ...): a policy-rc.d that answers 101 ("action forbidden") stops that. Containers
# usually have one; if not, one is added for the install and removed after.
install_without_starting() {
  export DEBIAN_FRONTEND=noninteractive
  local own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  if ! apt-get install -y -qq --no-install-recommends "$@"; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"
  fi
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}
if [ ! -x /usr/sbin/slapd ]; then
  echo "==> Installing slapd and ldap-utils (the LDAP connector tests run a real OpenLDAP)"
  install_without_starting slapd ldap-utils
  [ -x /usr/sbin/slapd ] || { echo "slapd could not be installed" >&2; exit 1; }
fi
if [ ! -x /usr/sbin/samba ] || ! command -v ip >/dev/null 2>&1; then
  echo "==> Installing Samba (the Active Directory tests run a real Samba AD DC)"
  # samba-tool domain provision also needs the DC's ldb modules (samba-dsdb-modules), its
  # provisioning data (samba-ad-provision) and the acl_xattr VFS module (samba-vfs-modules);
  # the test fixture gives the DC its own network namespace (unshare, and ip from iproute2).
  install_without_starting samba samba-dsdb-modules samba-vfs-modules samba-ad-provision iproute2
  [ -x /usr/sbin/samba ] || { echo "samba could not be installed" >&2; exit 1; }
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "==> Installing Debian's chromium (the browser tests drive it through Playwright)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends chromium fonts-dejavu-core; then
    apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core
  fi
  [ -x /usr/bin/chromium ] || { echo "chromium could not be installed" >&2; exit 1; }
fi
# The OpenID Connect tests run a real OpenID Provider (npm package oidc-provider, pinned in
# tests/oidc_provider/package-lock.json) with Node.js >= 20.19; `npm ci` installs it once.
oidc_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/oidc_provider"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "==> Installing Node.js and npm (the OpenID Connect tests run a real provider)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends nodejs npm; then
    apt-get update && apt-get install -y --no-install-recommends nodejs npm
  fi
fi
node_ok() { node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; }
node_ok || { echo "Node.js >= 20.19 is needed for tests/oidc_provider (found: $(node --version 2>/dev/null || echo none))" >&2; exit 1; }
if [ ! -d "$oidc_dir/node_modules/oidc-provider" ]; then
  echo "==> Installing the test OpenID Provider (npm ci in tests/oidc_provider)"
  (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci failed in $oidc_dir" >&2; exit 1; }
fi
# Installs Debian's rsyslog with its OpenSSL network driver for the SIEM stream tests; never
# started here (the tests run their own collector on a free port with throwaway certificates).
if [ ! -x /usr/sbin/rsyslogd ] \
  || ! dpkg-query -W -f='${Status}' rsyslog-openssl 2>/dev/null | grep -q 'ok installed'; then
  echo "==> Installing rsyslog and rsyslog-openssl (the SIEM tests run a real TLS collector)"
  install_without_starting rsyslog rsyslog-openssl
  [ -x /usr/sbin/rsyslogd ] || { echo "rsyslog could not be installed" >&2; exit 1; }
fi
exit 0
