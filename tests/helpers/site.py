"""The demo project under a real WSGI server (gunicorn) on loopback, with a database of its own.

``database(backend)`` makes a fresh SQLite file or PostgreSQL database (dropped afterwards);
``gunicorn(...)`` serves the demo project on a free 127.0.0.1 port and stops it on exit;
``manage(...)`` runs a management command in a child process against the same database.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_SiteTests000000"
BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("DATABASE_URL", "").startswith("postgres") else [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(database_url: str, api_base: str, *, api_key: str = API_KEY, **extra: str) -> dict[str, str]:
    """The environment of a demo-project child: this process's, less any Stripe/reconcile/Django/Celery setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "RECONCILE_", "DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="demo.settings",
        DATABASE_URL=database_url,
        STRIPE_API_BASE=api_base,
        STRIPE_API_KEY=api_key,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def manage(database_url: str, api_base: str, *args: str, timeout: float = 300, **extra: str):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env_for(database_url, api_base, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def database(backend: str, tmp_path: Path, label: str = "site") -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{label}.sqlite3'}"
        return
    import psycopg

    base = urlsplit(os.environ["DATABASE_URL"])
    name = f"{base.path.lstrip('/') or 'reconcile'}_{label}_{os.getpid()}"
    admin = urlunsplit(base._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(base._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stop(process: subprocess.Popen, seconds: float) -> None:
    """Terminate a child and wait for it; kill it if it has not ended within ``seconds``."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def gunicorn(database_url: str, api_base: str, *, workers: int = 1, threads: int = 1, **extra: str) -> Iterator[str]:
    """Serve the demo project; yields its base URL. Stops the server (and waits for it) on exit."""
    port = free_port()
    binary = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(binary), "demo.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers), "--threads", str(threads)]
        + ["--timeout", "120", "--log-level", "warning", "--graceful-timeout", "5"],
        cwd=ROOT,
        env=env_for(database_url, api_base, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/stripe/webhook/", timeout=2)
            except urllib.error.HTTPError as error:
                if error.code == 405:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.1)
        yield url
    finally:
        stop(server, 15)


REDIS_URL = os.environ.get("RECONCILE_TEST_REDIS", "redis://127.0.0.1:6379/5")


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means: no Redis here
        return False


def flush_redis(url: str = REDIS_URL) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()  # this test run's own database number only


@contextlib.contextmanager
def celery_worker(database_url: str, api_base: str, *, concurrency: int = 2, **extra: str) -> Iterator[None]:
    """A real Celery worker of the demo project (``celery -A demo worker``); stopped on exit."""
    binary = Path(sys.executable).with_name("celery")
    worker = subprocess.Popen(
        [str(binary), "-A", "demo", "worker", "--pool", "threads", "-c", str(concurrency), "-l", "warning"]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT,
        env=env_for(database_url, api_base, **{"CELERY_BROKER_URL": REDIS_URL, **extra}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        if worker.poll() is not None:
            raise AssertionError(f"the celery worker did not start: {worker.stderr.read() if worker.stderr else ''}")
        yield
    finally:
        stop(worker, 20)


def call_task(database_url: str, api_base: str, name: str, **kwargs) -> None:
    """Send a task to the broker the way celery beat would (``celery -A demo call``)."""
    import json

    done = subprocess.run(
        [str(Path(sys.executable).with_name("celery")), "-A", "demo", "call", name, "--kwargs", json.dumps(kwargs)],
        cwd=ROOT,
        env=env_for(database_url, api_base, CELERY_BROKER_URL=REDIS_URL),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def event_outcomes(database_url: str) -> dict[str, int]:
    """The event log's count per outcome, read directly (no Django in this process)."""
    query = "SELECT outcome, COUNT(*) FROM reconcile_stripeevent GROUP BY outcome"
    if database_url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)) as db:
            return dict(db.execute(query).fetchall())
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        return dict(conn.execute(query).fetchall())


def wait_for(predicate, timeout: float = 60.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
