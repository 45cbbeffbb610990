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

# -- events: a webhook arriving at the demo server, then an incremental pull ---------------------
WEBPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export FAKE_STRIPE_WEBHOOK_SECRET="whsec_$($PY -c 'import secrets; print(secrets.token_hex(16))')"
STRIPE_WEBHOOK_SECRETS="$FAKE_STRIPE_WEBHOOK_SECRET" RECONCILE_LOG=INFO \
  $PY manage.py runserver "127.0.0.1:$WEBPORT" --noreload >demo-webhooks.log 2>&1 &
WEB=$!
trap 'kill $FAKE $WEB 2>/dev/null || true' EXIT
$PY - "$WEBPORT" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
PY
step "# the fake Stripe delivers a signed webhook per change to http://127.0.0.1:$WEBPORT/stripe/webhook/"
$PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" webhook "http://127.0.0.1:$WEBPORT/stripe/webhook/" >/dev/null
step "# in Stripe: the Pro product renamed"
$PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" update products prod_DemoPro000001 '{"name": "Pro 2027"}' >/dev/null
sleep 1
step "# the demo server's log"
grep -E "event evt_|POST /stripe/webhook" demo-webhooks.log || true
step python manage.py stripe_events list
$PY manage.py stripe_events list
kill $WEB 2>/dev/null || true
wait $WEB 2>/dev/null || true
step "# with the web server down, Stripe changes again: the webhooks are lost (to this demo)"
$PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" update customers cus_DemoAlice00001 '{"name": "Alice S."}' >/dev/null
$PY -m reconcile.testing.fakestripe mutate "$STRIPE_API_BASE" cancel subscriptions sub_DemoAlice00001 >/dev/null
step python manage.py pull_stripe --incremental --check -v 2   "# reads /v1/events since the stored cursor"
set +e
$PY manage.py pull_stripe --incremental --check -v 2
set -e
step python manage.py pull_stripe --incremental
$PY manage.py pull_stripe --incremental
step python manage.py pull_stripe --check   "# a full pull agrees: nothing left to do"
$PY manage.py pull_stripe --check
rm -f demo-webhooks.log
