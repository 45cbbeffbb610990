"""Re-record fixtures/cassettes/ (``make cassettes``).

Against the project's fake Stripe (a test double, started here on loopback) by default; against
Stripe test mode when STRIPE_API_KEY is a test key (sk_test_/rk_test_) and STRIPE_API_BASE is unset.
Live keys are refused. Headers carrying the key or this machine's details are filtered at record time.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASSETTE_RUNS = {
    "pull_stripe_demo.yaml": ["pull_stripe"],
    "update_stripe_products_demo.yaml": ["update_stripe_products"],
}


def main() -> int:
    key = os.environ.get("STRIPE_API_KEY", "")
    base = os.environ.get("STRIPE_API_BASE", "")
    if key.startswith(("sk_live_", "rk_live_")):
        print("Refusing to record with a live key: use a test-mode key (sk_test_... or rk_test_...).", file=sys.stderr)
        return 2
    server = None
    if key.startswith(("sk_test_", "rk_test_")) and not base:
        target = "Stripe test mode"
    else:
        from reconcile.testing.fakestripe import DEMO_FIXTURES, FakeStripe, serve

        server = serve(FakeStripe.from_dir(DEMO_FIXTURES))
        key, base, target = "sk_test_RecorderFakeKey0000", server.url, f"the fake Stripe at {server.url}"
    workdir = tempfile.mkdtemp(prefix="reconcile-cassettes-")
    os.environ.update(
        STRIPE_API_KEY=key,
        STRIPE_API_BASE=base,
        DATABASE_URL=f"sqlite:///{workdir}/record.sqlite3",
        DJANGO_SETTINGS_MODULE="demo.settings",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from reconcile.testing.cassettes import CASSETTES, recorder

    settings.RECONCILE = {**settings.RECONCILE, "CONCURRENCY": 1}
    CASSETTES.mkdir(parents=True, exist_ok=True)
    for name, command in CASSETTE_RUNS.items():
        (CASSETTES / name).unlink(missing_ok=True)
        connections.close_all()
        Path(f"{workdir}/record.sqlite3").unlink(missing_ok=True)
        call_command("migrate", verbosity=0)
        with recorder("all").use_cassette(name):
            call_command(*command, stdout=io.StringIO())
        print(f"recorded {name} against {target}")
    if server:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
