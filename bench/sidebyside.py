"""Side by side with drf-stripe-subscription 1.2.2, in its own virtualenv (``.peer-venv``).

The peer crashes on stripe-python >= 15, so it never shares reconcile's environment: the bench
creates ``.peer-venv`` on first use (``python -m venv`` + pip from PyPI) and drives the peer through
``bench/peer/run.py`` with that interpreter. Both tools read the same fake Stripe process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .fakeproc import FakeProcess
from .scenarios import ROOT, SCRATCH, Db, Row, measured, reset_database, run_ours

PEER_VENV = ROOT / ".peer-venv"
# drf-stripe-subscription 1.2.2 declares Django 3.0-5.0; djangorestframework 3.15 is the last
# release for Django < 5.1; stripe < 15 because the peer treats stripe objects as dicts.
PEER_REQUIREMENTS = (
    "drf-stripe-subscription==1.2.2",
    "stripe<15",
    "Django>=4.2,<5.1",
    "djangorestframework<3.16",
    "psycopg[binary]>=3.1",
)
INSTALL_TIMEOUT = 900.0
PEER_TIMEOUT = 3600.0


@dataclass
class PeerRun:
    data: str  # "peer-compatible" | "stripe"
    db: str
    n: int
    objects_stored: int
    requests: int
    sql: int
    wall: float
    peak_rss_mib: float
    rows: dict = field(default_factory=dict)
    listed: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    sql_kinds: dict = field(default_factory=dict)
    by_endpoint: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    @property
    def objects_per_s(self) -> float:
        return self.objects_stored / self.wall if self.wall > 0 else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "objects_per_s": self.objects_per_s}


def peer_python() -> Path:
    return PEER_VENV / "bin" / "python"


def ensure_peer_venv(log=print) -> Path:
    """Create ``.peer-venv`` with the peer's pinned requirements unless it is already there."""
    marker = PEER_VENV / ".bench-requirements"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if peer_python().exists() and marker.exists() and marker.read_text() == wanted:
        return peer_python()
    log(f"  creating {PEER_VENV.name} for drf-stripe-subscription 1.2.2 (first use only) ...")
    if not peer_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, timeout=INSTALL_TIMEOUT)
    subprocess.run(
        [str(peer_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEER_REQUIREMENTS],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    marker.write_text(wanted)
    return peer_python()


def _peer(args: list[str], db: Db, api_base: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    env.update(PEER_DATABASE_URL=db.url, PEER_API_BASE=api_base, DJANGO_SETTINGS_MODULE="bench.peer.settings")
    proc = subprocess.run(
        [str(peer_python()), str(ROOT / "bench" / "peer" / "run.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PEER_TIMEOUT,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
        raise RuntimeError(f"the peer's run.py {args[0]} failed (exit {proc.returncode}):\n{tail}")
    return proc


def peer_db(db: Db) -> Db:
    """The peer's own database beside ours: ``<name>_peer``."""
    if db.name == "sqlite":
        return Db.sqlite(SCRATCH / "peer.sqlite3")
    parts = urlsplit(db.url)
    return Db("postgres", parts._replace(path=parts.path + "_peer").geturl())


def run_peer(db: Db, fake: FakeProcess, data: str, n: int) -> PeerRun:
    """Migrate an empty database for the peer, then one full pull, page after page."""
    reset_database(db)
    _peer(["migrate"], db, fake.url)
    fake.call("reset")
    out = SCRATCH / f"peer-{data}-{db.name}.json"
    out.unlink(missing_ok=True)
    _peer(["pull", "--out", str(out)], db, fake.url)
    result = json.loads(out.read_text())
    received = fake.call("requests")
    rows = result["rows"]
    return PeerRun(
        data=data,
        db=db.name,
        n=n,
        objects_stored=rows["products"] + rows["prices"] + rows["customers"] + rows["subscriptions"],
        requests=received["total"],
        sql=sum(result["sql"].values()),
        wall=result["wall"],
        peak_rss_mib=result["peak_rss_mib"],
        rows=rows,
        listed=result["listed"],
        steps=result["steps"],
        sql_kinds=result["sql"],
        by_endpoint=received["by_endpoint"],
        versions=result["versions"],
    )


def side_by_side(n: int, seed: int, dbs: list[Db], *, findings_n: int | None = None, log=print) -> dict:
    """Both tools on the peer-compatible variant (ratios), then the peer alone on the account as the
    generator makes it (what it does with true Stripe shapes: the findings)."""
    ensure_peer_venv(log)
    result: dict = {"n": n, "pairs": [], "stripe_data": None}
    log(f"  side by side: the peer-compatible variant, N={n:,} ...")
    with FakeProcess(n, seed, variant="peer") as fake:
        fake.call("warm")
        for db in dbs:
            log(f"  drf-stripe-subscription on {db.name} ...")
            theirs = run_peer(peer_db(db), fake, "peer-compatible", n)
            log(f"  reconcile (creating users, as the peer does) on {db.name} ...")
            reset_database(db)
            run_ours("migrate", db, fake.url)
            ours: Row = measured("first pull (peer-compatible data)", db, fake, n, unthrottled=True, create_users=True)
            result["pairs"].append({"db": db.name, "ours": ours.as_dict(), "theirs": theirs.as_dict()})
    findings_n = n if findings_n is None else findings_n
    log(f"  drf-stripe-subscription on the generator's account as is (true Stripe shapes), N={findings_n:,} ...")
    with FakeProcess(findings_n, seed) as fake:
        fake.call("warm")
        sqlite = next((db for db in dbs if db.name == "sqlite"), dbs[0])
        result["stripe_data"] = run_peer(peer_db(sqlite), fake, "stripe", findings_n).as_dict()
    return result
