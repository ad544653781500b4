"""The outbox's schema, by Alembic: every process brings the database up to date as it starts.

This package is Alembic's script directory, configured here rather than by an alembic.ini.
Each revision in `versions/` spells its DDL out as it was written, so it means the same
whenever it runs; none imports widget/delivery/outbox.py, whose tables must match head
(tests/delivery/test_migrations.py checks). Processes starting together take turns (a
Postgres advisory lock, or a flock on a file beside a SQLite database) and each revision
commits with its version row. Databases made before Alembic are stamped at the revision they
match, then upgraded. A new revision, whose DDL is then written out by hand:

    .venv/bin/python -c "from alembic import command; from widget.delivery import migrations;
    command.revision(migrations.alembic_config(), 'what it adds', rev_id='0005')"
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# Alembic's own INFO lines repeat ours ("Running upgrade ...") and add two per run; its
# warnings still show, and a level set by whoever configures logging is kept.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

# Any constant unique to this project: the key of Postgres's session-wide advisory lock.
ADVISORY_LOCK_KEY = 0x6B6C7669  # "klvi"
# What each version of the numbered steps that came before Alembic (table `outbox_schema`)
# had made: the same DDL as these revisions.
OLD_VERSIONS = {1: "0001", 2: "0002", 3: "0003"}
DIRECTORY = Path(__file__).resolve().parent


class SchemaTooNew(RuntimeError):
    """The database was upgraded by a newer version of the service than this one."""


def _log_step(*, ctx: MigrationContext, step: MigrationInfo, heads: set[str],
              run_args: dict[str, Any]) -> None:
    """One line per revision applied, or recorded for a database made before Alembic."""
    if step.is_stamp:
        log.info("outbox schema from before Alembic adopted at revision %s",
                 step.up_revision_id)
    else:
        log.info("outbox schema upgraded to revision %s (%s)", step.up_revision_id,
                 getattr(step.up_revision, "doc", "").rstrip("."))


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration of this script directory; commands that touch a database run
    on `connection`, which must not be inside a transaction."""
    config = Config()
    config.set_main_option("script_location", str(DIRECTORY))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["on_version_apply"] = [_log_step]
    return config


SCRIPTS = ScriptDirectory.from_config(alembic_config())
HEAD: str = SCRIPTS.get_current_head() or ""
KNOWN = frozenset(script.revision for script in SCRIPTS.walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: empty, or made before Alembic)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Apply the revisions this database lacks; returns the revision it is at (HEAD)."""
    with engine.connect() as conn:  # every start: usually at head, and then this is all
        revision = current_revision(conn)
    if revision == HEAD:
        return HEAD
    _refuse_unknown(revision)
    with _migrating(engine) as conn:
        return _migrate(conn)


def _refuse_unknown(revision: str | None) -> None:
    if revision is not None and revision not in KNOWN:
        raise _too_new(f"revision {revision}")


def _too_new(where: str) -> SchemaTooNew:
    return SchemaTooNew(
        f"the outbox database is at {where}, which this code does not know (its newest is "
        f"{HEAD}), made by a newer version of the service: deploy the newer version, or "
        "point DATABASE_URL at another database"
    )


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection to migrate on, while no other process migrates this database."""
    database = engine.url.database
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                # Ending the session releases the lock, whatever state a failed revision
                # left the connection in; back in the pool it could keep the lock held.
                conn.invalidate()
    elif engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        with open(f"{database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            migrating = _sqlite_migration_engine(engine.url)
            try:
                with migrating.connect() as conn:
                    yield conn
            finally:
                migrating.dispose()
    else:  # an in-memory database belongs to one process
        with engine.connect() as conn:
            yield conn


def _sqlite_migration_engine(url: URL) -> Engine:
    """The same SQLite file, with DDL inside transactions: pysqlite only begins one before
    INSERT, UPDATE or DELETE, so a revision's DDL would commit without its version row, and a
    process dying in between would leave the database unable to start."""
    engine = create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, not by pysqlite
        dbapi_connection.execute("PRAGMA busy_timeout=10000")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now, not half-way through

    return engine


def _migrate(conn: Connection) -> str:
    """Adopt a database made before Alembic, then apply the revisions it lacks."""
    revision = current_revision(conn)  # again: the process before us may have done it all
    _refuse_unknown(revision)
    if revision == HEAD:
        return HEAD
    adopted = _adopted_revision(conn) if revision is None else None
    # Alembic commits each revision itself only on a connection outside a transaction.
    conn.commit()
    if adopted is not None:
        command.stamp(alembic_config(conn), adopted)
    command.upgrade(alembic_config(conn), "head")
    conn.commit()
    return HEAD


def _adopted_revision(conn: Connection) -> str | None:
    """The revision a database made before Alembic matches (None: an empty database)."""
    inspector = inspect(conn)
    tables = inspector.get_table_names()
    if "submissions" not in tables:
        return None
    version = 0
    if "outbox_schema" in tables:
        version = conn.execute(text("SELECT max(version) FROM outbox_schema")).scalar() or 0
        if version > max(OLD_VERSIONS):
            raise _too_new(f"outbox_schema version {version}")
    # The old first step made the table of its day, and a process could stop before the
    # later steps wrote their rows: the columns say how far the schema really is.
    columns = {column["name"] for column in inspector.get_columns("submissions")}
    found = 3 if "requeued_at" in columns else 2 if "fingerprint" in columns else 1
    return OLD_VERSIONS[max(version, found)]

