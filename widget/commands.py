"""Command-line entry points: `flask --app app send` runs the sender in the foreground;
`flask --app app outbox ...` looks after the queue (counts, dead rows, requeue, purge)."""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from widget.delivery import outbox, sender
from widget.ops import webhooks
from widget.reviews import sync


@click.command("send")
def send_command() -> None:
    """Deliver the outbox to Klaviyo, and keep the reviews mirror in step, until SIGTERM or
    SIGINT (the Procfile `worker`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if current_app.config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        # The web process spends the same Klaviyo budget (moderation reads, or a sender
        # thread), and a second worker would too: a per-process budget would exceed it.
        raise click.ClickException(
            "Refusing to start: a separate sender needs a budget shared with every other "
            "process. Set RATELIMIT_STORAGE_URI=redis://... (the same on web and worker), "
            "or deliver from the single web process (WIDGET_SENDER=thread, no worker)."
        )
    delivery = sender.current()
    syncer = sync.current()  # the mirror's sync runs beside it (one at a time: a lease)
    if current_app.config["REVIEWS_SYNC_SECONDS"] > 0:
        syncer.start()
    notifier = webhooks.current()  # and the webhook's events, when WIDGET_WEBHOOK_URL is set
    if notifier is not None:
        notifier.start()

    def stop(_signum: int, _frame: Any) -> None:
        delivery.stopping.set()
        delivery.notify()
        syncer.stopping.set()
        syncer.wake.set()
        if notifier is not None:
            notifier.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A log line, not an echo: with LOG_FORMAT=json every line must be JSON.
    logging.getLogger(__name__).info("sending to %s", current_app.config["KLAVIYO_BASE_URL"])
    delivery.run()


@click.group("outbox", cls=AppGroup)
def outbox_group() -> None:
    """Look after the outbox: counts, dead rows, requeue, purge."""


@outbox_group.command("counts")
def counts_command() -> None:
    """Rows by state."""
    for state, count in outbox.current().counts().items():
        click.echo(f"{state:<10}{count:>8}")


@outbox_group.command("dead")
@click.option("--limit", default=100, show_default=True, help="rows to list, oldest first")
def dead_command(limit: int) -> None:
    """Dead rows (Klaviyo refused them, or they expired), with the reason; no bodies."""
    rows = outbox.current().rows(("dead",), limit)
    for row in rows:
        click.echo(f"{row['id']}  created={row['created_at']:%Y-%m-%dT%H:%M:%S}  "
                   f"attempts={row['attempts']}  status={row['last_status'] or '-'}  "
                   f"error={row['last_error'] or '-'}")
    click.echo(f"{len(rows)} dead row(s) shown")


@outbox_group.command("requeue")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="requeue every dead row")
def requeue_command(ids: tuple[str, ...], every: bool) -> None:
    """Send dead rows again (by id, or --all), with a fresh age limit."""
    if bool(ids) == every:
        raise click.UsageError("give dead row ids, or --all")
    count = outbox.current().requeue_dead(None if every else list(ids))
    click.echo(f"requeued {count} dead row(s)")
    if ids and count < len(ids):
        click.echo(f"{len(ids) - count} id(s) were not dead rows and were left alone", err=True)


@outbox_group.command("purge")
@click.option("--older-than-days", type=float, default=None,
              help="default: OUTBOX_PURGE_DELIVERED_DAYS")
def purge_command(older_than_days: float | None) -> None:
    """Delete delivered rows delivered more than N days ago (bodies hold personal data)."""
    days = older_than_days
    if days is None:
        days = current_app.config["OUTBOX_PURGE_DELIVERED_DAYS"]
    if days < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--older-than-days")
    count = outbox.current().purge_delivered(timedelta(days=days))
    click.echo(f"purged {count} delivered row(s) older than {days:g} days")


def init_app(app: Flask) -> None:
    app.cli.add_command(send_command)
    app.cli.add_command(outbox_group)
