#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up: PostgreSQL and Redis on localhost.
# Starts them with this machine kind's commands when they are installed but stopped.
# Installs Debian's OpenLDAP server (slapd) for the connector tests when it is missing; it is
# never started here: the tests start their own on a free port with a throwaway configuration.
# Installs Debian's chromium for the browser tests (Playwright's own download does not work here).
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
if [ ! -x /usr/sbin/slapd ]; then
  echo "==> Installing slapd and ldap-utils (the LDAP connector tests run a real OpenLDAP)"
  export DEBIAN_FRONTEND=noninteractive
  # The package would start a system slapd on port 389; a policy-rc.d that answers 101
  # ("action forbidden") stops that. Containers usually have one; if not, add one meanwhile.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  if ! apt-get install -y --no-install-recommends slapd ldap-utils; then
    apt-get update && apt-get install -y --no-install-recommends slapd ldap-utils
  fi
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  [ -x /usr/sbin/slapd ] || { echo "slapd could not be installed" >&2; exit 1; }
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "==> Installing Debian's chromium (the browser tests drive it through Playwright)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends chromium fonts-dejavu-core; then
    apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core
  fi
  [ -x /usr/bin/chromium ] || { echo "chromium could not be installed" >&2; exit 1; }
fi
exit 0
