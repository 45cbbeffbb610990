"""The I/O boundary, enforced: the pure core imports neither stripe nor django.db, only
reconcile/stripe imports stripe, and only reconcile/db (and the migrations) write to the database."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys

import reconcile.core
from tests.conftest import ROOT

PACKAGE = ROOT / "reconcile"
# Calls that write, or open the transaction writes go in: on a manager or queryset, a model
# instance, django.db.transaction, or a raw connection.
WRITES = {"save", "delete", "bulk_create", "bulk_update", "create", "update", "get_or_create", "update_or_create"}
RAW = {"atomic", "cursor", "execute", "executemany"}


def sources() -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def writes(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver, name = ast.unparse(node.func.value), node.func.attr
            on_rows = name in WRITES and ("objects" in receiver or name in ("save", "bulk_create", "bulk_update"))
            raw = name in RAW and any(word in receiver for word in ("transaction", "connection", "cursor"))
            if on_rows or raw:
                found.append(f"line {node.lineno}: {ast.unparse(node.func)}")
    return found


def test_importing_the_core_loads_neither_stripe_nor_django_db():
    modules = [f"reconcile.core.{m.name}" for m in pkgutil.iter_modules(reconcile.core.__path__)]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'stripe' or m.startswith('django.db'))))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {m.rsplit(".", 1)[1] for m in modules} >= {"registry", "read", "parse", "snapshot", "diff", "plan", "report"}
    assert json.loads(done.stdout) == []


def test_only_the_stripe_package_imports_stripe():
    importers = {path for path, tree in sources().items() if any(n.split(".")[0] == "stripe" for n in imported(tree))}
    assert importers and all(path.startswith("reconcile/stripe/") for path in importers), importers


def test_only_the_db_package_and_the_migrations_write():
    found = {path: calls for path, tree in sources().items() if (calls := writes(tree))}
    outside = {p: c for p, c in found.items() if not p.startswith(("reconcile/db/", "reconcile/migrations/"))}
    assert outside == {}
    assert {p for p in found if p.startswith("reconcile/db/")} >= {"reconcile/db/apply.py", "reconcile/db/audit.py"}


def test_the_core_opens_no_files_and_prints_nothing():
    io = {"open", "print", "read_text", "write_text", "read_bytes", "write_bytes", "urlopen", "socket"}
    found = {
        path: ast.unparse(node.func)
        for path, tree in sources().items()
        if path.startswith("reconcile/core/")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in io
    }
    assert found == {}
