"""Alembic's environment for the outbox: runs on the connection the runner hands it."""

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the outbox's revisions run on a connection: pass one to "
                       "widget.delivery.migrations.alembic_config()")
context.configure(
    connection=connection,
    # No target_metadata: revisions are written by hand, never generated from today's tables.
    # A transaction per revision: a process that dies mid-upgrade leaves the database at the
    # last revision it finished, never between two.
    transaction_per_migration=True,
    on_version_apply=config.attributes.get("on_version_apply", []),
)
with context.begin_transaction():
    context.run_migrations()
