"""The service's own API description is valid OpenAPI, and the service keeps to it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from widget import create_app


def make_app(tmp_path_factory):
    path = tmp_path_factory.mktemp("openapi") / "outbox.db"
    return create_app({
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{path}",
        "KLAVIYO_PUBLIC_KEY": "PUBKEY",
        "WIDGET_SENDER": "off",
        "RATELIMIT_ENABLED": False,
        "WIDGET_OPEN_API": True,
        "WIDGET_TRUSTED_PROXIES": 0,
        "SECRET_KEY": "test-secret",
    })


def test_openapi_json_describes_the_submit_endpoint(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.0")
    post = document["paths"]["/client/reviews"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/vnd.api+json",
                                                   "application/json"}
    assert {"202", "400", "403", "413", "415", "422", "429"} <= set(post["responses"])
    author = (document["components"]["schemas"]["ReviewCreate"]["properties"]["data"]
              ["properties"]["attributes"]["oneOf"][1]["properties"]["author"])
    assert author["maxLength"] == 100


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_service_keeps_to_its_openapi_description(tmp_path_factory, mode):
    """schemathesis, default checks: no server error, no undocumented status or content
    type, responses as described, valid data accepted, invalid data refused."""
    app = make_app(tmp_path_factory)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "POST /client/reviews", "GET /healthz", "GET /readyz", "GET /reviews.json"}
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and operation.label in ("GET /healthz",
                                                                   "GET /readyz"):
            continue  # nothing to make invalid: the health checks take no input

        # /reviews.json without product_id is the shop's store reviews, and a product's
        # questions need the product: a dependency OpenAPI 3.0's parameters cannot state,
        # so valid-looking type=question without a product is refused (400).
        excluded = [positive_data_acceptance] if operation.label == "GET /reviews.json" \
            else []

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=80, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            # Uncompressed: the WSGI transport hands schemathesis the body as sent.
            case.call_and_validate(excluded_checks=excluded,  # noqa: B023 (run at once)
                                   headers={"Accept-Encoding": "identity"})

        run()
    app.extensions["outbox"].engine.dispose()
