"""The service plus bare Flask routes, so both are measured in the same gunicorn run.

The bare routes are the baselines: `POST /bare/json` parses the same JSON body and answers
the same 202 document without storing anything; `GET /bare/page/<name>` answers bytes that
the bench captured from one of our pages (BENCH_SNAPSHOTS names the folder), with the same
content type, without rendering anything.
"""

import uuid

from bare_app import snapshot
from flask import Response, jsonify, request

from app import app  # the service exactly as gunicorn loads it (app.py)


@app.post("/bare/json")
def bare_json():
    """Parse the body and answer the submit route's 202, storing nothing."""
    request.get_json()
    body = {"data": {"type": "review-submission", "id": str(uuid.uuid4()),
                     "attributes": {"status": "queued"}}}
    return jsonify(body), 202


@app.get("/bare/page/<name>")
def bare_page(name: str):
    """The captured bytes of one of our pages, as a static route would serve them."""
    body, content_type = snapshot(name)
    return Response(body, content_type=content_type)
