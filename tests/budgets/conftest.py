"""The budget tests' fixtures: `databases`, two pools on one database (tests/budget_store.py)."""

from tests.budget_store import databases

__all__ = ["databases"]
