"""Storage: the SQLAlchemy engine, the shared metadata, migrations and group commit."""
