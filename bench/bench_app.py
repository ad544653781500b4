"""The service plus a bare Flask JSON route, so both are measured in the same gunicorn run."""

import uuid

from flask import jsonify, request

from widget import create_app

app = create_app()


@app.post("/bare")
def bare():
    """The baseline: parse the same JSON body and answer the same 202, storing nothing."""
    request.get_json()
    body = {"data": {"type": "review-submission", "id": str(uuid.uuid4()),
                     "attributes": {"status": "queued"}}}
    return jsonify(body), 202
