"""docker-compose.local.yml cannot run here (no Docker engine); parse it and check what it must hold."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from reconcile.testing.fakestripe import DEMO_FIXTURES

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.local.yml").read_text())


def test_services_are_postgres_django_redis_celery_and_an_optional_fake_stripe():
    services = compose()["services"]
    assert set(services) == {"postgres", "django", "fake-stripe", "redis", "celeryworker", "celerybeat"}
    assert services["fake-stripe"]["profiles"] == ["fake"]
    assert services["postgres"]["image"].startswith("postgres:")


def test_django_reaches_postgres_with_the_settings_the_demo_project_reads():
    services = compose()["services"]
    django, postgres = services["django"], services["postgres"]
    env = django["environment"]
    pg = postgres["environment"]
    assert env["DATABASE_URL"] == (
        f"postgres://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert env["DJANGO_SETTINGS_MODULE"] == "demo.settings"
    assert {"STRIPE_API_KEY", "STRIPE_API_BASE"} <= set(env)
    assert not env["STRIPE_API_KEY"].split(":-")[-1].startswith(("sk_live", "rk_live"))
    assert django["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in postgres


def test_django_image_builds_from_files_that_exist_and_runs_manage_py():
    django = compose()["services"]["django"]
    dockerfile = ROOT / django["build"]["dockerfile"]
    assert dockerfile.is_file()
    text = dockerfile.read_text()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in shlex.split(line)[1:-1]:
                assert (ROOT / src).exists(), src
    start = (ROOT / "compose/local/django/start").read_text()
    assert "manage.py migrate" in start and "pull_stripe" in start
    assert (ROOT / "manage.py").is_file()


def test_fake_stripe_service_serves_the_demo_fixtures_on_its_port():
    fake = compose()["services"]["fake-stripe"]
    args = shlex.split(fake["command"])
    assert args[:3] == ["python", "-m", "reconcile.testing.fakestripe"]
    # without --fixtures the fake serves the demo account shipped in the package
    fixtures = ROOT / args[args.index("--fixtures") + 1] if "--fixtures" in args else DEMO_FIXTURES
    assert (fixtures / "products.json").is_file()
    port = args[args.index("--port") + 1]
    assert fake["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert "--in-container" in args


def test_celery_worker_and_beat_run_the_demo_app_against_redis():
    services = compose()["services"]
    assert services["redis"]["image"].startswith("redis:") and "healthcheck" in services["redis"]
    broker = "redis://redis:6379/0"
    assert services["django"]["environment"]["CELERY_BROKER_URL"] == broker
    assert services["django"]["environment"]["RECONCILE_WEBHOOK_QUEUE"] == "celery"
    for name, role in (("celeryworker", "worker"), ("celerybeat", "beat")):
        service = services[name]
        assert shlex.split(service["command"])[:4] == ["celery", "-A", "demo", role]
        assert service["image"] == services["django"]["image"]
        assert service["environment"]["CELERY_BROKER_URL"] == broker
        assert service["environment"]["DATABASE_URL"] == services["django"]["environment"]["DATABASE_URL"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "celery" in (ROOT / "compose/local/django/Dockerfile").read_text()


def test_the_processes_that_pull_share_two_malloc_arenas():
    """The README's advice for large pulls, taken by the compose file's own pulling processes
    (a string: Compose passes environment values as text)."""
    services = compose()["services"]
    for name in ("django", "celeryworker", "celerybeat"):
        assert services[name]["environment"]["MALLOC_ARENA_MAX"] == "2"
