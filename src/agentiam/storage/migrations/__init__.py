"""Alembic migrations of the agentiam schema."""
