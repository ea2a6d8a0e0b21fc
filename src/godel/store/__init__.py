"""The SQL side: the only package that imports SQLAlchemy (and Alembic)."""
