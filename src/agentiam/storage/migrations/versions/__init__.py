"""Alembic revision scripts; the initial revision creates the schema."""
