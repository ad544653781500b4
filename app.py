"""What gunicorn and `flask --app app` load."""

import gc

from widget import create_app

app = create_app()

# Everything made so far (modules, templates, schemas, the app) lives as long as the
# process: keep it out of the cyclic collector's full passes. Those passes stalled a web
# process for 25 ms each under load, which queued requests into a 100 ms p99; with the
# start-up objects frozen a full pass takes 0.3 ms (bench/capacity.py, docs/benchmarks.md).
gc.freeze()
