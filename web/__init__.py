"""Understudy: a self-hosted chat whose models have understudies."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The repository root (templates/, static/, migrations/ live beside the package).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
