"""Alembic revisions, one file a schema version (migrations.py runs them; Alembic skips this file)."""
