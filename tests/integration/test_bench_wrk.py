"""The benchmarks' wrk loader (`bench.load.measure_wrk`) against a real HTTP server: what wrk
reports becomes the same figures as the Python loader's, a non-2xx answer an error."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import measure_wrk, wrk_summary

REPORT = """Running 2s test @ http://127.0.0.1:38123/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.21ms   10.12ms  90.73ms   95.69%
    Req/Sec   839.20    298.93     1.45k    70.00%
  Latency Distribution
     50%  830.00us
     75%    3.21ms
     90%    5.81ms
     99%    1.20s
  1675 requests in 2.01s, 6.14MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    835.11
Transfer/sec:      3.06MB
"""


def test_a_wrk_report_gives_requests_percentiles_in_ms_and_errors():
    assert wrk_summary(REPORT, 2.0) == {
        "requests": 1675,
        "requests_per_s": 837.5,
        "p50_ms": 0.83,
        "p99_ms": 1200.0,
        "errors": 10,
    }


def test_text_that_is_not_a_wrk_latency_report_is_refused():
    without_distribution = REPORT.replace("     99%    1.20s\n", "")
    with pytest.raises(ValueError, match="not a wrk --latency report"):
        wrk_summary(without_distribution, 2.0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200 if self.path == "/ok" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_wrk_loads_a_real_server_and_counts_refusals_as_errors(server):
    ok = measure_wrk(f"{server}/ok", 2, 1.0)
    assert ok["connections"] == 2 and ok["requests"] > 10 and ok["errors"] == 0
    assert 0 < ok["p50_ms"] <= ok["p99_ms"]
    missing = measure_wrk(f"{server}/missing", 1, 1.0)
    assert missing["requests"] > 10 and missing["errors"] == missing["requests"]
