"""Alembic's migrations of the database, run by `server/users/migrate.py` (no alembic.ini)."""
