"""A loop in a daemon thread of this process: the sender and the mirror's sync are each one.
And whether gevent drives the process, for the code that must hand work to a real thread."""

from __future__ import annotations

import sys
import threading


def gevent_patched() -> bool:
    """Whether gevent drives this process (the Procfile's web role)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


class Loop:
    """`run()` in a daemon thread named `thread_name`, until `stop()`; `wake` cuts a wait short."""

    thread_name = "loop"

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread of this process."""
        self.thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self.thread.start()
        return self.thread

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self) -> None:
        raise NotImplementedError
