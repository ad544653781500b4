"""The service plus bare Flask routes, so both are measured in the same gunicorn run.

The bare routes are the in-process baselines (which pay our hooks and middlewares too:
bench/capacity.py also measures bench/bare_app.py in a process of its own, the baseline its
aims use): `POST /bare/json` parses the same JSON body and answers the same 202 document
without storing anything (bare_app.py's view); `GET /bare/page/<name>` answers bytes that
the bench captured from one of our pages (BENCH_SNAPSHOTS names the folder), with the same
content type, without rendering anything.
"""

from bare_app import snapshot, submission
from flask import Response

from app import app  # the service exactly as gunicorn loads it (app.py)

# Parse the body and answer the submit route's 202, storing nothing: bare_app.py's own view
# (the same parsing and bytes as the bare app in its own process), inside our app.
app.add_url_rule("/bare/json", "bare_json", submission, methods=["POST"])


@app.get("/bare/page/<name>")
def bare_page(name: str):
    """The captured bytes of one of our pages, as a static route would serve them."""
    body, content_type = snapshot(name)
    return Response(body, content_type=content_type)
