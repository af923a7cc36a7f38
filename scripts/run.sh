#!/usr/bin/env bash
# Sets up and runs Vouchsafe: web server, Celery worker and beat. Ctrl-C stops all of them.
# Embedded default: SQLite under var/ and kombu's filesystem broker (no server needed).
# Set DATABASE_URL / CELERY_BROKER_URL to use PostgreSQL / Redis instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.dev}"
PORT="${PORT:-8000}"
# Links in messages follow PORT; "localhost" because WebAuthn (owner passkeys) refuses an IP
# address as its relying party id.
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:${PORT}}"
BIN=.venv/bin
mkdir -p var/broker var/broker-processed var/broker-control

# A local OpenID Provider for owner sign-in (tests/oidc_provider, npm package oidc-provider)
# when Node.js >= 20.19 is here; without it the portal says IdP sign-in is not configured.
OIDC_PORT="${OIDC_PORT:-9400}"
oidc_dir=tests/oidc_provider
if command -v node >/dev/null 2>&1 && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  if [ -d "$oidc_dir/node_modules/oidc-provider" ] || (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    export DEMO_OIDC_ISSUER="http://127.0.0.1:${OIDC_PORT}"
    export DEMO_OIDC_CLIENT_SECRET="${DEMO_OIDC_CLIENT_SECRET:-$($BIN/python -c 'import secrets;print(secrets.token_urlsafe(24))')}"
  fi
fi

# Development fakes of Entra ID, Okta and Google Workspace (scripts/fake_idps.py), on the ports of
# config/settings/dev.py (VOUCHSAFE_FAKE_GRAPH_PORT, _OKTA_PORT, _GOOGLE_PORT): acme's connector is
# the Entra ID one. The connector settings name these variables; the fakes expect the same values.
export DEMO_ENTRA_CLIENT_SECRET="${DEMO_ENTRA_CLIENT_SECRET:-$($BIN/python -c 'import secrets;print(secrets.token_urlsafe(24))')}"
export DEMO_OKTA_API_TOKEN="${DEMO_OKTA_API_TOKEN:-$($BIN/python -c 'import secrets;print(secrets.token_urlsafe(24))')}"

cleanup() {
  trap - INT TERM EXIT
  echo; echo "==> Stopping web server, worker and beat"
  kill -TERM $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
echo "==> Applying migrations"
$BIN/python manage.py migrate --noinput
# The key that signs audit checkpoints (var/audit-keys/; never in the database). Production
# generates its own with the same command and keeps it off the database host.
$BIN/python manage.py audit_keygen --if-missing
if [ -n "${DEMO_OIDC_ISSUER:-}" ]; then
  echo "==> Starting the demo OpenID Provider at ${DEMO_OIDC_ISSUER}"
  (cd "$oidc_dir" && OIDC_PORT="$OIDC_PORT" OIDC_CLIENT_ID=vouchsafe-demo \
    OIDC_CLIENT_SECRET="$DEMO_OIDC_CLIENT_SECRET" \
    OIDC_REDIRECT_URI="${PUBLIC_BASE_URL}/owner/idp/callback/" \
    exec node server.mjs >/dev/null 2>&1) &
  for _ in $(seq 30); do
    curl -fs "${DEMO_OIDC_ISSUER}/.well-known/openid-configuration" >/dev/null 2>&1 && break; sleep 0.5
  done
fi
echo "==> Starting the identity provider fakes (Entra ID, Okta, Google Workspace)"
$BIN/python scripts/fake_idps.py &
fakes_pid=$!
for _ in $(seq 30); do
  kill -0 "$fakes_pid" 2>/dev/null || break
  $BIN/python scripts/fake_idps.py --dump >/dev/null 2>&1 && break; sleep 0.5
done
kill -0 "$fakes_pid" 2>/dev/null \
  || echo "    The fakes did not start (see above): acme's Entra ID recoveries fail until they run."
echo "==> Seeding demo data (idempotent)"
$BIN/python manage.py seed_demo

echo "==> Starting Celery worker with embedded beat"
$BIN/celery -A config worker --beat --pool=solo --loglevel=WARNING \
  --schedule var/celerybeat-schedule &
echo
echo "    Vouchsafe is running at ${PUBLIC_BASE_URL}/ (owner portal: ${PUBLIC_BASE_URL}/owner/)"
echo "    Demo logins (password + TOTP secret + backup codes): var/demo-credentials.json"
echo "    Ctrl-C stops the web server, worker, beat and the identity provider fakes."
echo
$BIN/python manage.py runserver "127.0.0.1:${PORT}" --noreload
