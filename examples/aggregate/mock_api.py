"""A stand-in for the CRM, order and ticket services on 127.0.0.1, for the example.

    python examples/aggregate/mock_api.py [PORT]        # default 8765

Every response is delayed by DELAY seconds, so running the three reads one after the
other would take three times as long as running them together.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DELAY = 0.3

CUSTOMERS = {
    "C-7": {"id": "C-7", "name": "Ada Lovelace", "email": "ada@example.com"},
    "C-8": {"id": "C-8", "name": "Alan Turing", "email": "alan@example.com"},
}
ORDERS = [
    {"id": "A-1001", "customer": "C-7", "total": 124.20, "status": "shipped"},
    {"id": "A-1017", "customer": "C-7", "total": 899.00, "status": "paid"},
    {"id": "A-1020", "customer": "C-7", "total": 45.00, "status": "cancelled"},
    {"id": "A-1031", "customer": "C-7", "total": 310.50, "status": "packed"},
    {"id": "A-1002", "customer": "C-8", "total": 89.00, "status": "shipped"},
]
TICKETS = [
    {"id": "T-1", "customer": "C-7", "subject": "Keyboard arrived without cable", "state": "open"},
    {"id": "T-2", "customer": "C-7", "subject": "Invoice address", "state": "closed"},
    {"id": "T-3", "customer": "C-7", "subject": "Where is order A-1031?", "state": "open"},
]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        time.sleep(DELAY)
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        if len(parts) == 2 and parts[0] == "customers":
            customer = CUSTOMERS.get(parts[1])
            return self._send(200, customer) if customer else self._send(404, {"error": "no such customer"})
        if parts == ["orders"]:
            found = [o for o in ORDERS if o["customer"] == q.get("customer")]
            return self._send(200, {"orders": found[: int(q.get("limit", "100"))]})
        if parts == ["tickets"]:
            found = [t for t in TICKETS if t["customer"] == q.get("customer")
                     and t["state"] == q.get("state", t["state"])]
            return self._send(200, {"tickets": found})
        return self._send(404, {"error": "not found"})


def start(port: int = 8765) -> ThreadingHTTPServer:
    """Start the mock API in a background thread; returns the server (call .shutdown())."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"mock API on http://127.0.0.1:{port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
