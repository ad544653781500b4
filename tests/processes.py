"""Run the real service (gunicorn as in the Procfile, or the `send` command) in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One process group: SIGKILL takes the gunicorn master and its workers together."""

    def __init__(self, args: list[str], env: dict[str, str], port: int | None = None,
                 log_path: Path | None = None) -> None:
        self.port = port
        self.log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=self.log,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0, path: str = "/healthz") -> Service:
        """Wait for `path` to answer 200; a service that never does is killed, not
        leaked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._close_log()
                raise RuntimeError(f"service exited with {self.process.returncode}")
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError("service did not become ready")

    def kill(self) -> None:
        """SIGKILL, no clean-up of any kind: what a crashed or evicted dyno looks like."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self.log is not subprocess.DEVNULL and not self.log.closed:
            self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()


def procfile_command(role: str) -> str:
    """The Procfile's command for a role, exactly as the platform runs it."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == role:
            return command.strip()
    raise KeyError(role)


def gunicorn(env: dict[str, str], workers: int = 1, **kwargs) -> Service:
    """The Procfile's web role, run by bash as a platform would, on a free loopback port."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # the venv's gunicorn and flask
    env = {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "PORT": str(port),
           "WIDGET_WEB_PROCESSES": str(workers), **env}
    return Service(["bash", "-c", "exec " + procfile_command("web")], env, port, **kwargs)


def send_worker(env: dict[str, str], **kwargs) -> Service:
    """The Procfile's worker process: `flask --app app send`."""
    return Service([sys.executable, "-m", "flask", "--app", "app", "send"], env, **kwargs)
