"""schemathesis hooks for Strata's OpenAPI conformance test (tests/service.rs).

`POST /api/v1/leads/bulk` takes JSON Lines (`application/x-ndjson`), which schemathesis
cannot serialise by itself: a generated value is written as one JSON line.
"""
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return (json.dumps(value) + "\n").encode()
