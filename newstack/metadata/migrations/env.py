"""Alembic environment: runs on the connection that `upgrade_to_head` hands over, never on a URL.

To change the schema: edit schema.py, then add a revision here with the same change (alembic's
autogenerate against a database at head gives a draft); tests/newstack/metadata/test_schema.py
fails until the two agree.
"""

from alembic import context

from newstack.metadata.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place: alembic copies the table instead
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
