"""Persistence: SQLAlchemy 2 models, async sessions, queries."""
