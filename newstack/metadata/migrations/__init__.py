"""Alembic revisions of the metadata schema; `newstack.metadata.upgrade` runs them."""
