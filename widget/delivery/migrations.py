"""The outbox's schema, versioned: every process brings the database up to date as it starts.

A small numbered list instead of Alembic: the outbox is one table. Each step checks before it
changes anything (a table or a column that is already there is left alone), so a database
made by any earlier version of this code converges, and two processes starting at once
cannot break it: on Postgres they queue on an advisory lock and each step commits with its
version row; on SQLite (one machine) a step that lost a race is simply run again.
`outbox_schema` holds one row per applied step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError

log = logging.getLogger(__name__)

# Any constant unique to this project: the key of Postgres's session-wide advisory lock.
ADVISORY_LOCK_KEY = 0x6B6C7669  # "klvi"
SQLITE_RACE_RETRIES = 5

versions_metadata = MetaData()
schema_versions = Table(
    "outbox_schema",
    versions_metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", DateTime, nullable=False),
)


class SchemaTooNew(RuntimeError):
    """The database was upgraded by a newer version of the service than this one."""


def _columns(conn: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns(table)}


def _indexes(conn: Connection, table: str) -> set[str]:
    return {index["name"] for index in inspect(conn).get_indexes(table)}


def _add_columns(conn: Connection, table: Table, names: tuple[str, ...]) -> None:
    present = _columns(conn, table.name)
    for name in names:
        if name not in present:  # added columns are nullable: no rewrite of existing rows
            column_type = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {column_type}"))


def _add_indexes(conn: Connection, table: Table, names: tuple[str, ...]) -> None:
    present = _indexes(conn, table.name)
    for index in table.indexes:
        if index.name in names and index.name not in present:
            index.create(conn)


def _v1_submissions(conn: Connection) -> None:
    """The submissions table (new databases get today's definition, indexes included;
    the steps below then find their work done)."""
    from widget.delivery.outbox import submissions

    submissions.create(conn, checkfirst=True)


def _v2_fingerprint(conn: Connection) -> None:
    """Repeated posts of the same review are found by a fingerprint (databases made before)."""
    from widget.delivery.outbox import submissions

    _add_columns(conn, submissions, ("fingerprint",))
    _add_indexes(conn, submissions, ("ix_submissions_fingerprint",))


def _v3_requeue_and_purge(conn: Connection) -> None:
    """`requeued_at` restarts the age limit of a dead row sent again; delivered rows are
    found by age for the purge."""
    from widget.delivery.outbox import submissions

    _add_columns(conn, submissions, ("requeued_at",))
    _add_indexes(conn, submissions, ("ix_submissions_delivered",))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_submissions),
    (2, _v2_fingerprint),
    (3, _v3_requeue_and_purge),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The highest applied step (0 for an empty database)."""
    if "outbox_schema" not in inspect(conn).get_table_names():
        return 0
    versions = conn.execute(select(schema_versions.c.version)).scalars().all()
    return max(versions, default=0)


def upgrade(engine: Engine) -> int:
    """Apply the steps this database has not had yet; returns the version it is at."""
    if engine.dialect.name == "postgresql":
        return _upgrade_postgres(engine)
    for attempt in range(SQLITE_RACE_RETRIES):
        try:
            return _upgrade(engine)
        except (OperationalError, IntegrityError):  # another process ran the same step
            if attempt == SQLITE_RACE_RETRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _upgrade_postgres(engine: Engine) -> int:
    with engine.connect() as lock:
        # Session-wide advisory lock: processes starting together upgrade one at a time, and
        # a later one finds the work done. Released when this connection closes.
        lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        lock.commit()
        try:
            return _upgrade(engine)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            lock.commit()


def _upgrade(engine: Engine) -> int:
    from widget.delivery.outbox import utcnow

    with engine.begin() as conn:
        versions_metadata.create_all(conn, checkfirst=True)
        version = current_version(conn)
    if version > LATEST:
        raise SchemaTooNew(
            f"the outbox database is at schema version {version}, newer than this code "
            f"knows ({LATEST}): deploy the newer version of the service, or point "
            "DATABASE_URL at another database"
        )
    for number, step in MIGRATIONS:
        if number <= version:
            continue
        with engine.begin() as conn:  # the step and its version row commit together
            step(conn)
            conn.execute(schema_versions.insert(), {"version": number, "applied_at": utcnow()})
        log.info("outbox schema upgraded to version %d (%s)", number, step.__doc__)
    return max(version, LATEST)
