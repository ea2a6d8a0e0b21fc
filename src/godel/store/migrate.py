"""Running the Alembic migrations from code (`godel db upgrade`, and `serve` on SQLite)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from godel.errors import LedgerUnavailable
from godel.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the ledger schema to `revision`; safe to run on every start.
    Raises LedgerUnavailable when the database cannot be reached or refuses."""
    cfg = alembic_config(db.url)
    try:
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Several pods start at once; the first migrates, the others wait for it.
                conn.execute(text("SELECT pg_advisory_xact_lock(7471)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as err:
        raise LedgerUnavailable(str(getattr(err, "orig", None) or err)) from err


def current(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with db.read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as err:
        raise LedgerUnavailable(str(getattr(err, "orig", None) or err)) from err
