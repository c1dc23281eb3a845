"""Shared pytest set-up: make the flat scripts importable and prepare Jittor before any test."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jittor_env  # noqa: E402,F401  (sets Jittor's environment before jittor is imported)
