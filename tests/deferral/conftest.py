"""Fixtures for the deferral tests: the queue bed (support/queue_bed.py)."""

from support.queue_bed import make_bed  # noqa: F401
