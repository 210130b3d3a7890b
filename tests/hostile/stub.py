"""A tiny loopback HTTP server that answers as a hostile case scripts it, Stripe-like or not.

The simulator is faithful to Stripe; some cases need a server that is not: a balance
transaction without ``created``, a page whose ``data`` is not a list, a web page where the API
should be. Each route answers a fixed response, or a sequence of them (the last repeats).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def as_json(obj: Any, status: int = 200) -> Answer:
    return Answer(status, "application/json", json.dumps(obj).encode())


def html(status: int = 200) -> Answer:
    return Answer(status, "text/html", b"<!doctype html><html><body>Not Stripe</body></html>\n")


def account(account_id: str, created: int) -> Answer:
    return as_json({"id": account_id, "object": "account", "created": created})


def page(data: Any, has_more: Any = False) -> Answer:
    return as_json(
        {"object": "list", "url": "/v1/balance_transactions", "has_more": has_more, "data": data}
    )


def balance(amounts: dict[str, int]) -> Answer:
    items = [{"amount": v, "currency": c, "source_types": {"card": v}} for c, v in amounts.items()]
    return as_json({"object": "balance", "livemode": False, "available": items, "pending": []})


def good_bt(n: int, created: int) -> dict[str, Any]:
    """A well-formed EUR charge, the template every malformed one departs from."""
    return {
        "id": f"txn_1Stub{n:014d}",
        "object": "balance_transaction",
        "amount": 1000 + n,
        "available_on": created + 86400,
        "created": created,
        "currency": "eur",
        "description": f"Order {n}",
        "fee": 59,
        "fee_details": [],
        "net": 941 + n,
        "reporting_category": "charge",
        "source": None,
        "status": "available",
        "type": "charge",
    }


class Stub:
    """Routes by path (query ignored); ``hits`` counts requests per path."""

    def __init__(self, routes: dict[str, Answer | Sequence[Answer]]) -> None:
        self.routes = {p: [a] if isinstance(a, Answer) else list(a) for p, a in routes.items()}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with stub._lock:
                    n = stub.hits[path]
                    stub.hits[path] += 1
                answers = stub.routes.get(path) or [html(404)]
                answer = answers[min(n, len(answers) - 1)]
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def serving(routes: dict[str, Answer | Sequence[Answer]]) -> Iterator[Stub]:
    stub = Stub(routes)
    thread = threading.Thread(target=stub.server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
        thread.join(timeout=5)


def now() -> int:
    return int(time.time())
