#!/usr/bin/env python3
"""Local stand-in for Grafana, Tempo and PagerDuty in the E2E run: answers every request with a
small JSON success and appends "METHOD path" to the file named by E2E_STUB_LOG."""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ.get("E2E_STUB_LOG", "/tmp/carapulse-e2e-stub.log")


class Handler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path}\n")
        body = json.dumps({"status": "ok", "id": 1, "traces": [], "batches": []}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18099
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
