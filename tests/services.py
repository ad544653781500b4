"""The real Postgres and Redis of this machine (and CI), each test in its own corner.

- `postgres_database()`: a new database per test, dropped afterwards.
- `redis_prefix()`: the shared Redis with a key prefix per test; its keys are deleted after.
- `RedisServer`: a redis-server of the test's own on a free port, to stop and start at will
  (the shared one is never stopped); `PostgresServer` the same for PostgreSQL.
- `tiny_disk()`: a small tmpfs of the test's own, to fill up.
- `TcpProxy`: a loopback proxy in front of a server, to cut the connection and restore it.

Outside CI a missing service skips the test; in CI (CI=true) it fails it (`unavailable()`,
which the browser tests and the contract tests use too).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.processes import free_port

POSTGRES_HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1:5432")
POSTGRES_USERS = ("postgres", "root")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(what: str, how: str = "") -> None:
    """Fail in CI (CI=true), skip elsewhere: the one place a missing service, browser or
    file a test needs is decided. `how` says how to get it."""
    hint = f" ({how})" if how else ""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is needed in CI and is not available{hint}")
    pytest.skip(f"{what} is not available{hint}")


def _admin_url() -> str:
    for user in POSTGRES_USERS:
        url = f"postgresql+psycopg://{user}@{POSTGRES_HOST}/test"
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return url
        except OperationalError:
            continue
        finally:
            engine.dispose()
    unavailable(f"PostgreSQL on {POSTGRES_HOST}")
    raise AssertionError("unreachable")


@contextmanager
def postgres_database() -> Iterator[str]:
    """The DATABASE_URL (postgresql://) of a fresh database, dropped afterwards."""
    admin_url = _admin_url()
    name = f"widget_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        user = admin_url.split("://", 1)[1].split("@", 1)[0]
        yield f"postgresql://{user}@{POSTGRES_HOST}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(RATELIMIT_STORAGE_URI, RATELIMIT_KEY_PREFIX) on the shared Redis; keys deleted after."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        unavailable(f"Redis at {REDIS_URL}")
    prefix = f"widget-test-{uuid.uuid4().hex[:12]}"
    try:
        yield REDIS_URL, prefix
    finally:
        delete_keys(client, prefix)
        client.close()


def delete_keys(client: redis.Redis, prefix: str) -> int:
    """Delete the keys of one test: ours (`prefix:...`) and flask-limiter's (`LIMITS:prefix...`)."""
    keys = [key for pattern in (f"{prefix}*", f"LIMITS:{prefix}*")
            for key in client.scan_iter(match=pattern, count=1000)]
    return client.delete(*keys) if keys else 0


def keys_of(prefix: str) -> list[str]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return sorted(key for pattern in (f"{prefix}*", f"LIMITS:{prefix}*")
                      for key in client.scan_iter(match=pattern))
    finally:
        client.close()


class RedisServer:
    """A throwaway redis-server (no persistence) on a free loopback port."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            unavailable("redis-server")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                client.close()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        self.kill()
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: the data goes with it, as with a crashed or replaced Redis."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _postgres_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if found is None:
        unavailable(f"PostgreSQL's {name}")
    return found


class PostgresServer:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl) on a free port, to stop and
    start at will; the shared server is never touched. As root (CI), the cluster runs as
    the `postgres` user, since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are private to root.
        self.base = tempfile.mkdtemp(prefix="widget-pg-")
        self.data = os.path.join(self.base, "data")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres")
        self._run(self.initdb, "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync", "--no-instructions")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True,
                              timeout=60)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stderr[-1000:]}")

    def start(self) -> PostgresServer:
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off")
        self._run(self.pg_ctl, "-D", self.data, "-o", options, "-l",
                  os.path.join(self.base, "log"), "-w", "start")
        return self

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", self.data, "-m", "immediate", "-w",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.remove()


@contextmanager
def tiny_disk(megabytes: int) -> Iterator[str]:
    """A folder on a tmpfs of its own of `megabytes`, to fill up (needs root: CI is)."""
    folder = tempfile.mkdtemp(prefix="widget-disk-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs",
                              folder], capture_output=True, text=True)
    if mounted.returncode:
        os.rmdir(folder)
        unavailable(f"a tmpfs of our own ({mounted.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True)
        os.rmdir(folder)


class TcpProxy:
    """A loopback TCP proxy in front of a server (a database), to cut and restore: what a
    network failure looks like to a client. While cut, open connections are closed and new
    ones are closed as soon as they are accepted."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.stopping = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.stopping.set()
        self.cut()
        self.listener.close()
