"""The outbox's migrations, on SQLite and on Postgres: a new database matches the outbox's
tables, a revision keeps its meaning, databases of the old numbered steps are adopted, a newer
one is refused, processes starting together take turns."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.exc import DatabaseError

from tests.processes import ROOT
from tests.services import postgres_database
from widget.delivery import events, migrations, outbox  # noqa: F401  (events' tables too)
from widget.delivery.outbox import Outbox, connect, engine_url
from widget.reviews import store as mirror  # noqa: F401  (its tables join the metadata)

# The skeleton's table (git show 5e17004:widget/outbox.py): what revision 0001 must make.
FIRST_WRITTEN = MetaData()
Table(
    "submissions",
    FIRST_WRITTEN,
    Column("id", String(36), primary_key=True),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("possible_duplicate", Boolean, nullable=False),
    Column("idempotency_key", String(255), unique=True),
    Column("request_hash", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("claimed_at", DateTime),
    Column("delivered_at", DateTime),
    Index("ix_submissions_due", "state", "next_attempt_at"),
)

# The DDL the old code had SQLAlchemy emit, step by step ({ts}: DateTime on each dialect).
ORIGINAL = [
    """CREATE TABLE submissions (
        id VARCHAR(36) NOT NULL, body TEXT NOT NULL, state VARCHAR(16) NOT NULL,
        attempts INTEGER NOT NULL, next_attempt_at {ts} NOT NULL, last_status INTEGER,
        last_error TEXT, possible_duplicate BOOLEAN NOT NULL, idempotency_key VARCHAR(255),
        request_hash VARCHAR(64), created_at {ts} NOT NULL, updated_at {ts} NOT NULL,
        claimed_at {ts}, delivered_at {ts}, PRIMARY KEY (id), UNIQUE (idempotency_key))""",
    "CREATE INDEX ix_submissions_due ON submissions (state, next_attempt_at)",
]
FINGERPRINT = [
    "ALTER TABLE submissions ADD COLUMN fingerprint VARCHAR(64)",
    "CREATE INDEX ix_submissions_fingerprint ON submissions (fingerprint, created_at)",
]
REQUEUE = [
    "ALTER TABLE submissions ADD COLUMN requeued_at {ts}",
    "CREATE INDEX ix_submissions_delivered ON submissions (state, delivered_at)",
]
VERSIONS_TABLE = """CREATE TABLE outbox_schema (
    version INTEGER NOT NULL, applied_at {ts} NOT NULL, PRIMARY KEY (version))"""
TIMESTAMP = {"sqlite": "DATETIME", "postgresql": "TIMESTAMP WITHOUT TIME ZONE"}
OLD_ROW = """
INSERT INTO submissions (id, body, state, attempts, next_attempt_at, possible_duplicate,
    created_at, updated_at)
VALUES ('old-row', '{"data": 0}', 'queued', 0, '2026-01-01 00:00:00', false,
    '2026-01-01 00:00:00', '2026-01-01 00:00:00')"""
# name: (its DDL, its outbox_schema rows (None: made before versions), the revision it matches)
OLD_DATABASES = {
    "made before versions": (ORIGINAL, None, "0001"),
    "made before versions, with a fingerprint": (ORIGINAL + FINGERPRINT, None, "0002"),
    "at version 1": (ORIGINAL, [1], "0001"),
    "at version 2": (ORIGINAL + FINGERPRINT, [1, 2], "0002"),
    "at version 3": (ORIGINAL + FINGERPRINT + REQUEUE, [1, 2, 3], "0003"),
    # The old first step made the table of its day; the process stopped before step 2.
    "at version 1 with the whole table": (ORIGINAL + FINGERPRINT + REQUEUE, [1], "0003"),
}

START = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
from widget.delivery.outbox import connect
print("ready", flush=True)
sys.stdin.readline()  # "go", once all four have imported
connect(sys.argv[1]).dispose()
"""

ALONE = """
import sys, types
# widget/__init__.py imports the whole app, outbox included: stand in for the parent packages.
for name in ("widget", "widget.delivery"):
    package = types.ModuleType(name)
    package.__path__ = [name.replace(".", "/")]
    sys.modules[name] = package
from sqlalchemy import create_engine
from widget.delivery import migrations
print(migrations.upgrade(create_engine("sqlite://")))
print(" ".join(sorted(name for name in sys.modules if name.startswith("widget"))))
"""


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def engine(database_url):
    """A plain engine on the database, which migrates nothing by itself."""
    engine = create_engine(engine_url(database_url))
    yield engine
    engine.dispose()


def differences(conn, metadata, tables_ignored=()):
    """What Alembic's autogenerate would change to make the database match `metadata`."""
    def include_name(name, kind, _parents):
        return kind != "table" or name not in tables_ignored

    context = MigrationContext.configure(conn, opts={"include_name": include_name})
    return compare_metadata(context, metadata)


def upgraded(log_text):
    return re.findall(r"outbox schema upgraded to revision (\w+)", log_text)


def test_a_new_database_reaches_head_and_matches_the_outbox_tables(database_url, engine):
    connect(database_url).dispose()
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
        assert differences(conn, outbox.metadata) == []


def test_revision_0001_alone_makes_the_table_as_first_written(engine):
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0001")
        assert migrations.current_revision(conn) == "0001"
        assert differences(conn, FIRST_WRITTEN) == []


@pytest.mark.parametrize("old", OLD_DATABASES)
def test_a_database_of_the_old_code_is_adopted_and_keeps_its_rows(old, database_url, engine,
                                                                  caplog):
    statements, versions, revision = OLD_DATABASES[old]
    timestamp = TIMESTAMP[engine.dialect.name]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement.format(ts=timestamp)))
        if versions is not None:
            conn.execute(text(VERSIONS_TABLE.format(ts=timestamp)))
            for version in versions:
                conn.execute(text("INSERT INTO outbox_schema VALUES (:v, '2026-11-23 10:37:19')"),
                             {"v": version})
        conn.execute(text(OLD_ROW))
    caplog.set_level(logging.INFO, logger="widget.delivery.migrations")
    store = Outbox(connect(database_url))
    try:
        assert f"from before Alembic adopted at revision {revision}" in caplog.text
        assert upgraded(caplog.text) == sorted(r for r in migrations.KNOWN if r > revision)
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.HEAD
            # outbox_schema is left as it was, for a rollback to the code before Alembic.
            assert differences(conn, outbox.metadata, tables_ignored={"outbox_schema"}) == []
        row = store.get("old-row")
        assert (row.body, row.state) == ('{"data": 0}', "queued")
        assert store.claim_due().id == "old-row"
    finally:
        store.engine.dispose()


def test_a_database_at_a_revision_this_code_does_not_know_is_refused(database_url, engine):
    connect(database_url).dispose()
    with engine.begin() as conn:  # what a newer deploy's revision 0099 leaves behind
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(migrations.SchemaTooNew, match="deploy the newer version") as refused:
        connect(database_url)
    assert "point DATABASE_URL at another database" in str(refused.value)


def test_a_database_of_the_old_code_at_a_version_it_never_had_is_refused(database_url, engine):
    timestamp = TIMESTAMP[engine.dialect.name]
    with engine.begin() as conn:
        for statement in ORIGINAL + [VERSIONS_TABLE]:
            conn.execute(text(statement.format(ts=timestamp)))
        conn.execute(text("INSERT INTO outbox_schema VALUES (4, '2030-01-01 00:00:00')"))
    with pytest.raises(migrations.SchemaTooNew, match="deploy the newer version"):
        connect(database_url)


def test_four_processes_starting_at_once_apply_each_revision_once(database_url, engine):
    processes = [
        subprocess.Popen([sys.executable, "-c", START, database_url], cwd=ROOT, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    try:
        for process in processes:
            assert process.stdout.readline() == "ready\n"
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        logs = [process.communicate(timeout=60)[1] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0, 0, 0, 0], logs
    assert sorted(upgraded("".join(logs))) == sorted(migrations.KNOWN)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() \
            == [migrations.HEAD]


def test_starting_at_head_only_reads_the_revision(database_url):
    connect(database_url).dispose()
    engine = create_engine(engine_url(database_url))
    with engine.connect():  # the dialect's own first queries are not ours
        pass
    statements = []
    event.listen(engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_: statements.append(statement))
    try:
        assert migrations.upgrade(engine) == migrations.HEAD
    finally:
        engine.dispose()
    assert len(statements) <= 2, statements
    assert all(s.lstrip().upper().startswith(("SELECT", "PRAGMA")) for s in statements)
    assert not any("advisory" in s for s in statements)


def test_a_revision_that_fails_half_way_is_undone_whole(database_url, engine):
    with engine.connect() as conn:
        command.upgrade(migrations.alembic_config(conn), "0003")
    with engine.begin() as conn:  # 0004 adds content_digest, then fails to make this table
        conn.execute(text("CREATE TABLE outbox_health (id INTEGER PRIMARY KEY)"))
    with pytest.raises(DatabaseError):
        connect(database_url)
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == "0003"
        columns = {column["name"] for column in inspect(conn).get_columns("submissions")}
        assert "content_digest" not in columns


def test_every_revision_can_be_undone_and_done_again(database_url, engine):
    connect(database_url).dispose()
    with engine.connect() as conn:
        command.downgrade(migrations.alembic_config(conn), "base")
        assert migrations.current_revision(conn) is None
        assert inspect(conn).get_table_names() == ["alembic_version"]
    connect(database_url).dispose()
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
        assert differences(conn, outbox.metadata) == []


def test_the_migrations_do_not_import_the_outbox():
    result = subprocess.run([sys.executable, "-c", ALONE], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    head, modules = result.stdout.splitlines()
    assert head == migrations.HEAD
    assert "widget.delivery.migrations" in modules.split()
    assert "widget.delivery.outbox" not in modules.split()
