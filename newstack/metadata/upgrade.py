"""Schema upgrades of the metadata database with alembic (revisions in `migrations/versions/`).

Run at start-up by MetadataStore; safe when several processes start at once (one upgrades, the
others wait for its transaction and then find the schema at head).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from newstack.metadata.engine import configure_engine, write_tx

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# a fixed name for the advisory lock that serialises concurrent upgrades on PostgreSQL
_UPGRADE_LOCK = "ocbridge-metadata-schema-upgrade"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision in `migrations/versions/`."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no alembic revision found in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the newest schema in one transaction (a no-op when it is there)."""
    configure_engine(engine)
    config = _config()
    with write_tx(engine, _UPGRADE_LOCK) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
