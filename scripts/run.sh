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
mkdir -p var/broker var/broker-processed

echo "==> Applying migrations"
$BIN/python manage.py migrate --noinput
echo "==> Seeding demo data (idempotent)"
$BIN/python manage.py seed_demo

cleanup() {
  trap - INT TERM EXIT
  echo; echo "==> Stopping web server, worker and beat"
  kill -TERM $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
echo "==> Starting Celery worker with embedded beat"
$BIN/celery -A config worker --beat --pool=solo --loglevel=WARNING \
  --schedule var/celerybeat-schedule &
echo
echo "    Vouchsafe is running at ${PUBLIC_BASE_URL}/ (owner portal: ${PUBLIC_BASE_URL}/owner/)"
echo "    Demo logins (password + TOTP secret + backup codes): var/demo-credentials.json"
echo "    Ctrl-C stops the web server, worker and beat."
echo
$BIN/python manage.py runserver "127.0.0.1:${PORT}" --noreload
