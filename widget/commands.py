"""Command-line entry points: `flask --app app send` runs the sender in the foreground."""

from __future__ import annotations

import logging
import signal
from typing import Any

import click
from flask import Flask, current_app

from widget import sender


@click.command("send")
def send_command() -> None:
    """Deliver the outbox to Klaviyo until SIGTERM or SIGINT (the Procfile `worker`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    delivery = sender.current()

    def stop(_signum: int, _frame: Any) -> None:
        delivery.stopping.set()
        delivery.notify()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"sending to {current_app.config['KLAVIYO_BASE_URL']}")
    delivery.run()


def init_app(app: Flask) -> None:
    app.cli.add_command(send_command)
