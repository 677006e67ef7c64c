"""GET /metrics: the API's requests counted by route template and status, with their
latency, in the Prometheus text format."""

from __future__ import annotations

from tests.support import metric

EVENTS = {"method": "GET", "route": "/api/events", "status": "200"}
ONE_DETECTION = {"method": "GET", "route": "/api/detections/{detection_id}", "status": "404"}
UNMATCHED = {"method": "GET", "route": "unmatched", "status": "404"}
BAD_LIMIT = {"method": "GET", "route": "/api/events", "status": "422"}


def _scrape(client) -> str:
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


def test_requests_are_counted_by_route_template_and_status(api_client):
    before = _scrape(api_client)
    for _ in range(3):
        assert api_client.get("/api/events", params={"limit": 1}).status_code == 200
    for detection_id in (999_999_991, 999_999_992):
        assert api_client.get(f"/api/detections/{detection_id}").status_code == 404
    assert api_client.get("/no/such/page").status_code == 404
    assert api_client.get("/api/events", params={"limit": 0}).status_code == 422
    after = _scrape(api_client)

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("vigil_http_requests_total", **EVENTS) == 3
    assert moved("vigil_http_requests_total", **ONE_DETECTION) == 2
    assert moved("vigil_http_requests_total", **UNMATCHED) == 1
    assert moved("vigil_http_requests_total", **BAD_LIMIT) == 1
    # Ids make no series of their own.
    assert "999999991" not in after
    latency = {"method": "GET", "route": "/api/events"}
    assert moved("vigil_http_request_duration_seconds_count", **latency) == 4
    assert moved("vigil_http_request_duration_seconds_bucket", le="+Inf", **latency) == 4
    assert moved("vigil_http_request_duration_seconds_sum", **latency) > 0
