#!/usr/bin/env python
"""manage.py of the peer project (run it with .peer-venv/bin/python, from any directory)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
