"""Which database this is, for binding a saved plan to the database it was made against.

Two databases in the same state (a staging copy of production, two copies of one SQLite file) give
the same fingerprint; the identity tells them apart: the engine, host, port and database name, or
the resolved file of a SQLite database (a symlink to it is the same database). A plan moved to
another database, or made through another host name for the same server, is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.db import connections


def database_identity(alias: str = "default") -> str:
    conn = connections[alias]
    s = conn.settings_dict
    name = str(s.get("NAME") or "")
    if conn.vendor == "sqlite":
        memory = name == ":memory:" or "mode=memory" in name
        where = name if memory else str(Path(name.removeprefix("file:").split("?", 1)[0]).resolve())
    else:
        where = f"{s.get('HOST') or 'localhost'}:{s.get('PORT') or ''}/{name}"
    return "sha256:" + hashlib.sha256(f"{conn.vendor}:{where}".encode()).hexdigest()
