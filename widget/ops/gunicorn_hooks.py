"""gunicorn's server hooks for the web role (`--config python:widget.ops.gunicorn_hooks`):
one folder of per-process metrics for the processes of this container.

prometheus-client's multiprocess mode keeps each process's counters in files of
PROMETHEUS_MULTIPROC_DIR, and a scrape answered by any process adds them all up. The folder
must be empty when the server starts (files of an earlier run would be counted again), and
is read by the workers as they import prometheus-client, so it is set here, in the master,
before any worker starts. A worker that exits leaves its counters (totals never go down);
its live gauges are marked dead. Imported by gunicorn's master before gevent patches the
workers: nothing here imports more than the standard library until a worker has exited.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_made: list[str] = []  # the folder this master made, to remove on exit


def on_starting(server: Any) -> None:
    """Give the workers an empty metrics folder: the operator's (emptied), or a new one."""
    folder = os.environ.get(VARIABLE)
    if folder:
        os.makedirs(folder, exist_ok=True)
        for path in glob.glob(os.path.join(folder, "*.db")):
            os.remove(path)
    else:
        folder = tempfile.mkdtemp(prefix="widget-metrics-")
        _made.append(folder)
        os.environ[VARIABLE] = folder
    server.log.info("per-process metrics in %s", folder)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)
