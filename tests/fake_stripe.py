"""A local stand-in for api.stripe.com: the real `stripe` library talks HTTP to it (no network).
It records every request and honours Idempotency-Key like Stripe does (same key, same answer)."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's webhook signing scheme: t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<body>")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(event_id: str, kind: str, obj: dict) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "api_version": "2025-01-27",
                       "created": int(time.time()), "data": {"object": obj}}).encode()


class FakeStripe:
    def __init__(self):
        self.requests: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self._answers: dict[str, tuple[int, dict]] = {}
        self._ids = itertools.count(1)
        self.fail_with: int | None = None  # answer every request with this status while set
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                fake.requests.append({"path": self.path, "params": dict(parse_qsl(body)),
                                      "idempotency_key": self.headers.get("Idempotency-Key"),
                                      "authorization": self.headers.get("Authorization")})
                status, answer = fake.answer(self.path, dict(parse_qsl(body)), self.headers.get("Idempotency-Key"))
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, params: dict, key: str | None) -> tuple[int, dict]:
        if self.fail_with:
            return self.fail_with, {"error": {"type": "api_error", "message": "Stripe is having a bad day"}}
        if key and key in self._answers:
            return self._answers[key]
        number = next(self._ids)
        if path == "/v1/checkout/sessions":
            session = {"id": f"cs_test_{number}", "object": "checkout.session", "status": "open",
                       "payment_status": "unpaid", "url": f"https://checkout.stripe.test/pay/cs_test_{number}",
                       "expires_at": int(params["expires_at"]), "metadata": {"booking_id": params["metadata[booking_id]"]}}
            self.sessions[session["id"]] = session
            result = (200, session)
        elif path.startswith("/v1/checkout/sessions/") and path.endswith("/expire"):
            session = self.sessions.get(path.split("/")[4])
            if session is None or session["status"] != "open":
                result = (400, {"error": {"type": "invalid_request_error", "message": "Session is not open."}})
            else:
                session["status"] = "expired"
                result = (200, session)
        elif path == "/v1/refunds":
            result = (200, {"id": f"re_test_{number}", "object": "refund", "status": "succeeded",
                            "payment_intent": params.get("payment_intent")})
        else:
            result = (404, {"error": {"type": "invalid_request_error", "message": f"No such path {path}"}})
        if key:
            self._answers[key] = result
        return result

    def calls(self, path_part: str) -> list[dict]:
        return [request for request in self.requests if path_part in request["path"]]
