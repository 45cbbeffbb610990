#!/usr/bin/env bash
# The demo: the fake Stripe (a test double) on a loopback port, a fresh SQLite database,
# then plan, apply, drift and the check that finds it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export STRIPE_API_BASE="http://127.0.0.1:$PORT" STRIPE_API_KEY="sk_test_DemoNotARealKey0000"
export DATABASE_URL="sqlite:///$PWD/demo.sqlite3" DJANGO_SETTINGS_MODULE=demo.settings
rm -f demo.sqlite3
$PY -m reconcile.testing.fakestripe --port "$PORT" &
FAKE=$!
trap 'kill $FAKE 2>/dev/null || true' EXIT
for _ in $(seq 50); do $PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" requests >/dev/null 2>&1 && break; sleep 0.1; done
$PY manage.py migrate -v 0
$PY manage.py shell -v 0 -c "
from django.contrib.auth.models import User
User.objects.create_user('alice', 'alice.smith@example.com')
User.objects.create_user('carol', 'carol@example.org')"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step python manage.py pull_stripe --dry-run
$PY manage.py pull_stripe --dry-run
step python manage.py pull_stripe
$PY manage.py pull_stripe
step python manage.py pull_stripe --check   "# right after: nothing to do"
$PY manage.py pull_stripe --check
step "# drift in Stripe: a subscription canceled, a product renamed, a customer's email changed"
$PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" cancel subscriptions sub_DemoBob0000001 >/dev/null
$PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" update products prod_DemoStarter01 '{"name": "Starter 2027"}' >/dev/null
$PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" update customers cus_DemoCarol00001 '{"email": "carol@new.example.org"}' >/dev/null
step python manage.py pull_stripe --check -v 2
set +e
$PY manage.py pull_stripe --check -v 2
code=$?
set -e
echo "(exit code $code: 1 means drift found)"
step python manage.py pull_stripe --format markdown
$PY manage.py pull_stripe --format markdown
