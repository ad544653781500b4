"""Shared helpers for the benchmarks: wrk runs, gunicorn as in the Procfile, RSS."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import Service, free_port  # noqa: E402

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
"""


def need_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is needed: apt-get install -y wrk")
    return path


def gunicorn(env: dict[str, str], app: str = "bench_app:app", workers: int = 1) -> Service:
    """The Procfile's web settings (gevent workers), on a free loopback port."""
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", app, "--pythonpath", str(ROOT / "bench"),
            "--worker-class", "gevent", "--worker-connections", "1000",
            "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--timeout", "30",
            "--log-level", "warning"]
    return Service(args, env, port).wait_ready()


def wrk(url: str, body: bytes | None = None, seconds: int = 10, connections: int = 16,
        rate: int | None = None) -> dict[str, float]:
    """Requests/s, p50/p99 latency (ms) and non-2xx count of one bounded wrk run."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [need_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
        if body is not None:
            body_path = Path(tmp) / "body.json"
            body_path.write_bytes(body)
            script = Path(tmp) / "post.lua"
            script.write_text(WRK_SCRIPT.format(body=body_path))
            args[1:1] = ["-s", str(script)]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "non_2xx": float(m.group(1)) if (m := re.search(r"Non-2xx.*?:\s+(\d+)", out)) else 0.0,
        "errors": float(sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)",
                                                       out))),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def dump(figures: dict) -> str:
    return json.dumps(figures, indent=2, sort_keys=True)
