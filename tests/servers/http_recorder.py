#!/usr/bin/env python3
"""A small HTTP server on 127.0.0.1 that records every POST it is sent: the OTLP/HTTP
receiver (`POST /v1/traces`, JSON bodies with OTEL_EXPORTER_OTLP_PROTOCOL=http/json) and the
webhook server of the tests (tests/cli/telemetry.rs).

    http_recorder.py PORT_FILE LOG [STATUS]

Listens on a free port, writes it to PORT_FILE once listening, and appends one JSON line per
request to LOG: {"path", "content_type", "body"} where body is the parsed JSON, or the text
when it is not JSON. Answers every POST with STATUS (default 200), so that a test can stand
for a webhook that refuses. Standard library only.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, LOG = sys.argv[1], sys.argv[2]
STATUS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        line = json.dumps(
            {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "authorization": self.headers.get("Authorization"),
                "body": body,
            }
        )
        with LOCK, open(LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        reply = b"{}"
        self.send_response(STATUS)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
tmp = PORT_FILE + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
os.replace(tmp, PORT_FILE)
server.serve_forever()
