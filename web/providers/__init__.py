"""Thin adapters on the official provider SDKs."""
