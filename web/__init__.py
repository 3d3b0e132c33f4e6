"""Understudy: a self-hosted chat whose models have understudies."""

from __future__ import annotations

__version__ = "0.1.0"
