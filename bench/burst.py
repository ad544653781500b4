"""The burst a review-request email to 50,000 customers causes: 5,000 submissions in 60 s.

    .venv/bin/python bench/burst.py [--quick] [--markdown]

The real app under the Procfile's gunicorn in its embedded mode (SQLite outbox, sender
thread, web limits on), the fake Klaviyo on loopback in this process, and 200 client threads
(one requests.Session and one X-Forwarded-For address each) sending an open-loop schedule:
submission i is due at i * seconds / count. Every status and latency is recorded; afterwards
the outbox is read directly to check that every 202 is a row, and the peak RSS (VmHWM) of
every process is read before anything stops. `--quick`: 500 in 10 s from 50 clients.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from limits import parse_many
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dump  # noqa: E402  (puts the project root on sys.path)

from tests.fake_klaviyo import FakeKlaviyo  # noqa: E402
from tests.processes import gunicorn  # noqa: E402
from tests.reviews import review_body  # noqa: E402
from widget import config  # noqa: E402

FULL = {"count": 5000, "seconds": 60.0, "clients": 200}
QUICK = {"count": 500, "seconds": 10.0, "clients": 50}
TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for each client request
# Settings left at their defaults (passed empty, so a developer's environment cannot change
# the run); RATELIMIT_ENABLED is passed as "true", since empty would read as false.
DEFAULTED = ("WIDGET_SUBMIT_LIMIT", "WIDGET_EMAIL_LIMIT",
             "WIDGET_BACKLOG_LIMIT", "RATELIMIT_STORAGE_URI", "REDIS_URL", "SENDER_RATE_LIMITS",
             "DYNO")


ROUTER_HOPS = 1


def client_address(client: int) -> str:
    """A distinct address per client, as the platform's router would put in X-Forwarded-For."""
    return f"10.77.{client // 250}.{client % 250 + 1}"


def shopper_address(i: int) -> str:
    """A distinct address per submission: every shopper on a network of their own."""
    return f"10.{78 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"


def submission(i: int) -> bytes:
    """A distinct shopper's review: its own email and text (no per-email or duplicate hit)."""
    return json.dumps(review_body(
        email=f"shopper{i}@example.com", author=f"Shopper {i}",
        content=f"Burst review {i}: arrived quickly, fits well, would buy again.",
    )).encode()


def content_of(i: int) -> str:
    return json.loads(submission(i))["data"]["attributes"]["content"]


class Client(threading.Thread):
    """One shopper's browser behind one address: sends its share at their due times."""

    def __init__(self, number: int, url: str, due: list[tuple[int, float]], start: float,
                 per_shopper: bool = False):
        super().__init__(name=f"client-{number}", daemon=True)
        self.number, self.url, self.due, self.start_at = number, url, due, start
        self.per_shopper = per_shopper
        self.results: list[dict[str, Any]] = []

    def run(self) -> None:
        headers = {"Content-Type": "application/json",
                   "X-Forwarded-For": client_address(self.number)}
        with requests.Session() as session:
            for i, offset in self.due:
                wait = self.start_at + offset - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                late = max(0.0, -wait)
                body = submission(i)
                if self.per_shopper:
                    headers["X-Forwarded-For"] = shopper_address(i)
                started = time.monotonic()
                result: dict[str, Any] = {"i": i, "client": self.number, "late_s": late}
                try:
                    response = session.post(self.url, data=body, headers=headers,
                                            timeout=TIMEOUT)
                    result["status"] = response.status_code
                    result.update(describe(response))
                except requests.RequestException as error:
                    result["status"] = None
                    result["error"] = f"{type(error).__name__}: {error}"[:300]
                result["latency_s"] = time.monotonic() - started
                self.results.append(result)


def describe(response: requests.Response) -> dict[str, Any]:
    """What the bench keeps of an answer: the id of a 202, the kind of a refusal."""
    try:
        document = response.json()
        if response.status_code == 202:
            return {"id": document["data"]["id"]}
        error = (document.get("errors") or [{}])[0]
    except (ValueError, LookupError, TypeError, AttributeError):  # not our JSON:API shape
        return {"code": None, "body": response.text[:300]}
    by_email = (error.get("source") or {}).get("pointer") == "/data/attributes/email"
    return {"code": error.get("code"), "by": "email" if by_email else "ip",
            "retry_after": response.headers.get("Retry-After"),
            "body": response.text[:300] if response.status_code >= 500 else None}


def expected_per_client(limit: str, per_client: int, span: float) -> int:
    """How many of one client's submissions a per-IP limit admits when they are spread over
    `span` seconds: flask-limiter's fixed windows start at a key's first hit."""
    allowed = per_client
    for item in parse_many(limit):
        windows = math.floor(span / item.get_expiry()) + 1
        allowed = min(allowed, item.amount * windows)
    return allowed


def vm_kb(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (gunicorn's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def peak_rss(master: int) -> dict[str, float | None]:
    """Peak RSS (VmHWM) in MB of the gunicorn master, each worker, and this process."""
    mb = {"gunicorn_master": vm_kb(master, "VmHWM")}
    for n, pid in enumerate(children(master), 1):
        mb[f"gunicorn_worker_{n}"] = vm_kb(pid, "VmHWM")
    mb["bench_client_and_fake"] = vm_kb("self", "VmHWM")
    return {name: round(kb / 1024, 1) if kb is not None else None for name, kb in mb.items()}


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile, in ms."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)] * 1000, 1)


def outbox_rows(database_url: str) -> dict[str, str]:
    """id -> state of every row, read from the database directly."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT id, state FROM submissions")).all())
    finally:
        engine.dispose()


def log_excerpt(path: Path, limit: int = 40) -> list[str]:
    """Error lines (and tracebacks) from the service's log, for a report of what failed."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    keep = [line for line in lines
            if any(mark in line for mark in (" ERROR ", "CRITICAL", "Traceback", "Error:",
                                             "[ERROR]", '" 50'))]
    return keep[:limit]


def measure(quick: bool = False, per_shopper: bool = True) -> dict:
    """Run the burst and return its figures (JSON-serialisable). `per_shopper`: each
    submission from its own address (5,000 shoppers through 200 connections); else each
    client keeps one address, so the per-IP limit refuses most of its posts."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake's request log
    shape = QUICK if quick else FULL
    count, seconds, clients = shape["count"], shape["seconds"], shape["clients"]
    defaults = config.from_environ({})
    submit_limit = defaults["WIDGET_SUBMIT_LIMIT"]
    per_client = count // clients
    span = (per_client - 1) * clients * seconds / count
    admitted = per_client if per_shopper else \
        expected_per_client(submit_limit, per_client, span)
    with tempfile.TemporaryDirectory() as tmp, FakeKlaviyo() as fake:
        database_url = f"sqlite:///{tmp}/outbox.db"
        log_path = Path(tmp) / "web.log"
        env = {
            "DATABASE_URL": database_url,
            "WIDGET_SENDER": "thread",
            "WIDGET_OPEN_API": "true",  # token-less JSON, as a storefront integration sends
            "KLAVIYO_BASE_URL": fake.url,
            "KLAVIYO_PUBLIC_KEY": fake.public_key,
            "SECRET_KEY": "bench",
            # The defaults, whatever this shell or a .env file says: "" reads as unset.
            "RATELIMIT_ENABLED": "true",
            # As behind a platform's router, which appends the address it saw (the default
            # where the platform is known, e.g. Heroku's DYNO): the clients' addresses count.
            "WIDGET_TRUSTED_PROXIES": str(ROUTER_HOPS),
            **{name: "" for name in DEFAULTED},
        }
        server = gunicorn(env, log_path=log_path).wait_ready()
        try:
            url = server.url + "/client/reviews"
            start = time.monotonic() + 1.0  # every thread is waiting before the first is due
            shares: list[list[tuple[int, float]]] = [[] for _ in range(clients)]
            for i in range(count):
                shares[i % clients].append((i, i * seconds / count))
            threads = [Client(n, url, shares[n], start, per_shopper) for n in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(seconds + 60)
            elapsed = time.monotonic() - start
            rss = peak_rss(server.process.pid)
            rows = outbox_rows(database_url)
            delivered = fake.reviews()
            sent = fake.requests("/client/reviews")
            peaks = {"per_second": fake.peak(1), "per_fixed_minute": fake.peak(60)}
            alive = server.process.poll() is None
        finally:
            server.stop()
        log = log_excerpt(log_path)
    results = [r for thread in threads for r in thread.results]
    figures = summarise(shape, submit_limit, defaults, admitted, results, rows, delivered,
                        sent, peaks, rss, elapsed, alive, log)
    figures["addresses"] = "one per submission" if per_shopper else "one per client"
    return figures


def summarise(shape: dict, submit_limit: str, defaults: dict, admitted: int,
              results: list[dict], rows: dict[str, str], delivered: list[dict],
              sent: list, peaks: dict, rss: dict, elapsed: float, alive: bool,
              log: list[str]) -> dict:
    """The figures of one run, and whether each requirement holds."""
    count, clients = shape["count"], shape["clients"]
    statuses = Counter(r["status"] for r in results)
    ok = [r for r in results if r["status"] == 202]
    ids = {r["id"] for r in ok if r.get("id")}  # a 202 without an id counts as lost
    missing = sorted(ids - rows.keys())
    dead = sorted(i for i in ids if rows.get(i) == "dead")
    states = Counter(rows.values())
    contents = {content_of(r["i"]): r["i"] for r in ok}
    foreign = [b for b in delivered if b["data"]["attributes"]["content"] not in contents]
    refused = [r for r in results if r["status"] == 429]
    per_client_ok = Counter(r["client"] for r in ok)
    other_4xx = sum(n for s, n in statuses.items() if s is not None and 400 <= s < 500
                    and s != 429)
    for r in results:  # 503 is by design only as the backlog ceiling's answer
        r["backlog_full"] = r["status"] == 503 and r.get("code") == "backlog_full"
    backlog_full = sum(1 for r in results if r["backlog_full"])
    server_errors = [r for r in results if r["status"] is not None and r["status"] >= 500
                     and not r["backlog_full"]]
    failures = [r for r in results
                if r["status"] not in (202, 429) and not r["backlog_full"]]
    figures = {
        "shape": {"submissions": count, "seconds": shape["seconds"], "clients": clients,
                  "per_client": count // clients},
        "settings": {"WIDGET_SUBMIT_LIMIT": submit_limit,
                     "WIDGET_EMAIL_LIMIT": defaults["WIDGET_EMAIL_LIMIT"],
                     "WIDGET_BACKLOG_LIMIT": defaults["WIDGET_BACKLOG_LIMIT"],
                     "SENDER_RATE_LIMITS": defaults["SENDER_RATE_LIMITS"],
                     "WIDGET_TRUSTED_PROXIES": ROUTER_HOPS,
                     "RATELIMIT_ENABLED": defaults["RATELIMIT_ENABLED"],
                     "WIDGET_OPEN_API": True, "WIDGET_SENDER": "thread",
                     "outbox": "sqlite", "web_processes": 1},
        "expected": {"accepted_per_client": admitted, "accepted": admitted * clients,
                     "refused_429": count - admitted * clients},
        "elapsed_s": round(elapsed, 1),
        "answered": len(results),
        "status": {"202": statuses[202], "429": statuses[429], "503": backlog_full,
                   "other_4xx": other_4xx, "5xx": len(server_errors),
                   "connection_errors": statuses[None]},
        "refused_429_by": dict(Counter(r.get("by") for r in refused)),
        "refused_429_without_retry_after": sum(1 for r in refused if not r.get("retry_after")),
        "accepted_per_client": {"min": min(per_client_ok.values(), default=0),
                                "max": max(per_client_ok.values(), default=0)},
        "latency_202_ms": {"p50": percentile([r["latency_s"] for r in ok], 0.50),
                           "p99": percentile([r["latency_s"] for r in ok], 0.99),
                           "max": percentile([r["latency_s"] for r in ok], 1.0)},
        "latency_all_ms": {"p50": percentile([r["latency_s"] for r in results], 0.50),
                           "p99": percentile([r["latency_s"] for r in results], 0.99),
                           "max": percentile([r["latency_s"] for r in results], 1.0)},
        "schedule_max_late_s": round(max((r["late_s"] for r in results), default=0.0), 3),
        "outbox": {"accepted_ids": len(ids), "rows": len(rows), "states": dict(states),
                   "missing": len(missing), "dead": len(dead),
                   "rows_without_202": len(rows.keys() - ids)},
        "klaviyo": {"delivered_during_run": len(delivered), "requests": len(sent),
                    "throttled_429": sum(1 for r in sent if r.status == 429),
                    "not_from_a_202": len(foreign), **peaks},
        "peak_rss_mb": rss,
        "service_alive_at_end": alive,
        "service_log_error_lines": len(log),
    }
    figures["requirements"] = {
        "every_answer_202_429_or_503": not failures and len(results) == count,
        "zero_5xx": not server_errors,
        "zero_lost": not missing and not dead and len(ids) == statuses[202],
        "klaviyo_limits_kept": figures["klaviyo"]["throttled_429"] == 0
        and peaks["per_second"] <= 10 and peaks["per_fixed_minute"] <= 150,
    }
    if failures or missing or dead:
        figures["problems"] = {"failures": failures[:20], "missing_ids": missing[:20],
                               "dead_ids": dead[:20], "log": log}
    return figures


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    """(aim, what was measured, met) for the summary table."""
    status, req = figures["status"], figures["requirements"]
    who = figures["addresses"]
    rss = max(mb for mb in figures["peak_rss_mb"].values() if mb is not None)
    return [
        (f"Burst ({who}): every answer 202, or 429/503 by design; zero 5xx",
         f"{status['202']:,} × 202, {status['429']:,} × 429, {status['503']:,} × 503, "
         f"{status['5xx']} × 5xx, {status['connection_errors']} errors",
         req["every_answer_202_429_or_503"] and req["zero_5xx"]),
        (f"Burst ({who}): zero lost (every 202 a live outbox row)",
         f"{figures['outbox']['accepted_ids'] - figures['outbox']['missing']:,} / "
         f"{figures['outbox']['accepted_ids']:,}; largest peak RSS {rss} MB",
         req["zero_lost"]),
    ]


def markdown(figures: dict) -> str:
    """The section of docs/benchmarks.md for one run."""
    shape, status = figures["shape"], figures["status"]
    settings, expected = figures["settings"], figures["expected"]
    outbox, klaviyo = figures["outbox"], figures["klaviyo"]
    lat, req = figures["latency_202_ms"], figures["requirements"]
    per_client = shape["per_client"]
    low, high = figures["accepted_per_client"]["min"], figures["accepted_per_client"]["max"]
    spread = str(low) if low == high else f"{low}–{high}"
    per_minute = min(item.amount * 60 / item.get_expiry()
                     for item in parse_many(settings["SENDER_RATE_LIMITS"]))
    rss = ", ".join(f"{name.replace('_', ' ')} {mb} MB"
                    for name, mb in figures["peak_rss_mb"].items())

    def n(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else str(value)

    def holds(ok: bool) -> str:
        return "**holds**" if ok else "**fails**"

    lines = [
        f"## Burst: {n(shape['submissions'])} submissions in {shape['seconds']:g} seconds, "
        f"{figures['addresses']}",
        "",
        "The burst a review-request email to 50,000 customers causes, one in ten of them "
        "answering within the minute. The real app under the Procfile's gunicorn (gevent, "
        "1 process) in its embedded mode: SQLite outbox, sender thread, web limits on at "
        "their defaults "
        f"(`WIDGET_SUBMIT_LIMIT` = `{settings['WIDGET_SUBMIT_LIMIT']}` per IP, "
        f"`WIDGET_EMAIL_LIMIT` = `{settings['WIDGET_EMAIL_LIMIT']}`), and "
        "`WIDGET_OPEN_API=true`, so the clients post token-less JSON as a storefront "
        f"integration would. {n(shape['clients'])} concurrent client threads send an "
        f"open-loop schedule (submission i is due at i x {shape['seconds']:g}/"
        f"{n(shape['submissions'])} s; a late client sends at once), each submission a "
        "distinct shopper (its own email and text) with an `X-Forwarded-For` address as the "
        "platform's router adds it "
        f"(`WIDGET_TRUSTED_PROXIES={settings['WIDGET_TRUSTED_PROXIES']}`). The fake "
        "Klaviyo (10/s, 150/min fixed windows) runs on loopback in the bench process. "
        "Afterwards the outbox is read directly, and each process's peak RSS is VmHWM from "
        "`/proc` before anything stops.",
        "",
        (f"Every submission comes from an address of its own, so the per-IP limit is never "
         f"reached: all {n(expected['accepted'])} should be accepted."
         if figures["addresses"] == "one per submission" else
         f"Each client keeps one address and sends {per_client} submissions within a "
         f"minute; the per-IP limit admits {expected['accepted_per_client']} of them: "
         f"{n(expected['accepted'])} 202s and {n(expected['refused_429'])} 429s are "
         "expected by design, so the refusal path is under load too."),
        "",
        "```sh",
        ".venv/bin/python bench/burst.py [--per-client-addresses]   # --quick: 500 in 10 s",
        "```",
        "",
        "| figure | value |",
        "|---|---|",
        f"| sent / answered | {n(shape['submissions'])} / {n(figures['answered'])} in "
        f"{figures['elapsed_s']} s (latest start {figures['schedule_max_late_s']} s behind "
        "schedule) |",
        f"| 202 accepted | {n(status['202'])} (expected {n(expected['accepted'])}; "
        f"{spread} per client) |",
        f"| 429 refused | {n(status['429'])} (by IP {n(figures['refused_429_by'].get('ip', 0))}, "
        f"by email {n(figures['refused_429_by'].get('email', 0))}; without Retry-After "
        f"{figures['refused_429_without_retry_after']}) |",
        f"| 503 backlog full (`WIDGET_BACKLOG_LIMIT` {n(settings['WIDGET_BACKLOG_LIMIT'])}) | "
        f"{n(status['503'])} |",
        f"| other 4xx / other 5xx / connection errors | {status['other_4xx']} / {status['5xx']} / "
        f"{status['connection_errors']} |",
        f"| latency of the 202s p50 / p99 / max | {lat['p50']} / {lat['p99']} / "
        f"{lat['max']} ms |",
        f"| accepted ids found in the outbox | {n(outbox['accepted_ids'] - outbox['missing'])}"
        f" / {n(outbox['accepted_ids'])} ({outbox['dead']} dead; states "
        + ", ".join(f"{s} {n(c)}" for s, c in sorted(outbox["states"].items())) + ") |",
        f"| delivered to the fake Klaviyo during the run | {n(klaviyo['delivered_during_run'])}"
        f" (its 429s: {klaviyo['throttled_429']}; peak {klaviyo['per_second']}/s, "
        f"{klaviyo['per_fixed_minute']} in a fixed minute) |",
        f"| peak RSS | {rss} |",
        "",
        "- Every answer is 202, 429 or 503 by design: "
        f"{holds(req['every_answer_202_429_or_503'])}.",
        f"- Zero 5xx: {holds(req['zero_5xx'])}.",
        f"- Zero lost (every 202's id is a live row, none dead): {holds(req['zero_lost'])}.",
        f"- Klaviyo's limits kept while it drains: {holds(req['klaviyo_limits_kept'])}.",
        "",
        f"The rest of the accepted reviews wait in the outbox, as designed: the sender drains "
        f"at `{settings['SENDER_RATE_LIMITS']}`, so {n(outbox['accepted_ids'])} take about "
        f"{outbox['accepted_ids'] / per_minute:.0f} minutes to reach Klaviyo.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 in 10 s from 50 clients")
    parser.add_argument("--markdown", action="store_true", help="also print the section")
    parser.add_argument("--per-client-addresses", action="store_true",
                        help="one address per client (the per-IP limit refuses most posts)")
    args = parser.parse_args()
    figures = measure(quick=args.quick, per_shopper=not args.per_client_addresses)
    print(dump(figures))
    if args.markdown:
        print()
        print(markdown(figures))


if __name__ == "__main__":
    main()
