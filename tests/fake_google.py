"""A local stand-in for Google's OAuth 2.0 server and Calendar API v3: Authlib and requests talk
HTTP to it (no network). It keeps what Google keeps — codes, grants, access tokens, calendars,
events, push channels — checks what Google checks (client secret, redirect URI, PKCE S256,
bearer tokens), and records every request.

Push notifications are queued in `notifications`; with `deliver_notifications` on (browser tests,
where a real server listens at the channel's address) a thread posts them as Google does."""
from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import requests

CLIENT_ID = "fittribe-test.apps.googleusercontent.com"
CLIENT_SECRET = "fake-google-secret"
SCOPES = "https://www.googleapis.com/auth/calendar.readonly https://www.googleapis.com/auth/calendar.events"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)


class FakeGoogle:
    def __init__(self, access_token_seconds: int = 3600):
        self.access_token_seconds = access_token_seconds
        self.lock = threading.RLock()
        self.deliver_notifications = False
        self.reset()
        fake = self

        class Handler(GoogleHandler):
            google = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict] = []
            self.codes: dict[str, dict] = {}
            self.grants: dict[str, dict] = {}  # refresh token -> {"account", "revoked"}
            self.access: dict[str, dict] = {}  # access token -> {"refresh", "expires"}
            self.calendars: dict[str, list[dict]] = {}  # account -> its calendar list
            self.events: dict[str, dict[str, dict]] = {}  # calendar id -> event id -> event
            self.channels: dict[str, dict] = {}
            self.notifications: list[dict] = []  # queued push notifications (headers + address)
            self.failures: list[int] = []  # statuses answered, in order, to the next Calendar API calls
            self.granted_scopes = SCOPES
            self._ids = itertools.count(1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def app_config(self, **overrides) -> dict:
        from cryptography.fernet import Fernet

        return {"GOOGLE_CLIENT_ID": CLIENT_ID, "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
                "GOOGLE_TOKEN_KEYS": Fernet.generate_key().decode(),
                "GOOGLE_AUTH_URL": self.url + "/o/oauth2/v2/auth", "GOOGLE_TOKEN_URL": self.url + "/token",
                "GOOGLE_REVOKE_URL": self.url + "/revoke", "GOOGLE_API_BASE": self.url,
                "GOOGLE_RETRY_BACKOFF": 0.01, **overrides}

    # --- what a test does "in Google" ---------------------------------------------------------

    def account_calendars(self, account: str) -> list[dict]:
        """Every account has its primary calendar (id = the address), a "Work" one and a
        read-only holidays calendar."""
        with self.lock:
            return self.calendars.setdefault(account, [
                {"id": account, "summary": account, "primary": True, "accessRole": "owner"},
                {"id": f"work.{account}", "summary": "Work", "accessRole": "owner"},
                {"id": f"holidays.{account}", "summary": "Holidays", "accessRole": "reader"}])

    def add_event(self, calendar_id: str, start: datetime, end: datetime, summary: str = "Dentist",
                  transparency: str = "opaque") -> dict:
        """Someone adds an event in the calendar (in Google's own UI): push notifications follow."""
        return self._insert(calendar_id, {"summary": summary, "start": {"dateTime": _stamp(start)},
                                          "end": {"dateTime": _stamp(end)}, "transparency": transparency})

    def events_in(self, calendar_id: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events.get(calendar_id, {}).values() if e["status"] != "cancelled"]

    def revoke_account(self, account: str) -> None:
        """The person removes the app's access in their Google account."""
        with self.lock:
            for grant in self.grants.values():
                if grant["account"] == account:
                    grant["revoked"] = True

    def expire_access_tokens(self) -> None:
        """Access tokens stop working early (Google may do so at any time)."""
        with self.lock:
            self.access.clear()

    def calls(self, method: str, path_part: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and path_part in r["path"]]

    def deliver(self, post) -> list[int]:
        """Hand queued notifications to `post(headers) -> status` (a test client); their statuses."""
        with self.lock:
            queued, self.notifications = self.notifications, []
        return [post(n["headers"]) for n in queued]

    # --- internals ----------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}{secrets.token_hex(4)}"

    def _insert(self, calendar_id: str, body: dict) -> dict:
        with self.lock:
            event = {**body, "id": body.get("id") or self._new_id("ev"), "status": "confirmed",
                     "updated": _stamp(datetime.now(timezone.utc))}
            self.events.setdefault(calendar_id, {})[event["id"]] = event
        self._changed(calendar_id)
        return event

    def _changed(self, calendar_id: str) -> None:
        with self.lock:
            for channel_id, channel in self.channels.items():
                if channel["calendar_id"] == calendar_id:
                    self._queue(channel_id, channel, "exists")

    def _queue(self, channel_id: str, channel: dict, state: str) -> None:
        channel["number"] += 1
        notification = {"address": channel["address"], "headers": {
            "X-Goog-Channel-ID": channel_id, "X-Goog-Channel-Token": channel["token"],
            "X-Goog-Resource-ID": channel["resourceId"], "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel["number"])}}
        if self.deliver_notifications:
            threading.Thread(target=self._post, args=(notification,), daemon=True).start()
        else:
            self.notifications.append(notification)

    @staticmethod
    def _post(notification: dict) -> None:
        try:
            requests.post(notification["address"], headers=notification["headers"], timeout=10)
        except requests.RequestException:
            pass  # Google retries with backoff; the worker's scheduled refresh is the tests' backstop

    def _busy(self, calendar_id: str, start: datetime, end: datetime) -> list[dict]:
        spans = sorted((max(_parse(e["start"]["dateTime"]), start), min(_parse(e["end"]["dateTime"]), end))
                       for e in self.events_in(calendar_id) if e.get("transparency", "opaque") == "opaque")
        merged: list[list[datetime]] = []
        for s, e in spans:
            if s >= e:
                continue
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        return [{"start": _stamp(s), "end": _stamp(e)} for s, e in merged]


class GoogleHandler(BaseHTTPRequestHandler):
    google: FakeGoogle

    def log_message(self, *args) -> None:
        pass

    # --- plumbing ---
    def _answer(self, status: int, body: dict | str | None = None, headers: dict | None = None) -> None:
        if isinstance(body, str):
            data, kind = body.encode(), "text/html; charset=utf-8"
        else:
            data, kind = (json.dumps(body).encode() if body is not None else b""), "application/json"
        self.send_response(status)
        for name, value in {"Content-Type": kind, "Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._answer(status, {"error": {"code": status, "message": message}})

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = dict(parse_qsl(parts.query))
        is_json = "json" in (self.headers.get("Content-Type") or "")
        body = json.loads(raw or b"{}") if is_json else dict(parse_qsl(raw.decode()))
        self.google.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                     "authorization": self.headers.get("Authorization")})
        path = parts.path
        if path == "/o/oauth2/v2/auth" and method == "GET":
            return self._consent(query)
        if path == "/o/oauth2/v2/auth/decide" and method == "GET":
            return self._decide(query)
        if path == "/token" and method == "POST":
            return self._token(body)
        if path == "/revoke" and method == "POST":
            return self._revoke({**query, **body})
        if path.startswith("/calendar/v3/"):
            return self._api(method, path[len("/calendar/v3"):], query, body)
        self._error(404, f"no such path {path}")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    # --- OAuth ---
    def _consent(self, query: dict) -> None:
        if query.get("client_id") != CLIENT_ID or not query.get("redirect_uri") or query.get("response_type") != "code":
            return self._answer(400, "<h1>Error 400: invalid_request</h1>")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return self._answer(400, "<h1>Error 400: PKCE required</h1>")
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in query.items())
        self._answer(200, f"""<!doctype html><title>Sign in - Google Accounts</title>
<h1>FitTribe wants to access your Google Account</h1>
<p>See your calendars and add events ({html.escape(query.get('scope', ''))}).</p>
<form action="/o/oauth2/v2/auth/decide" method="get">{hidden}
<label>Account <input name="account" value="coach@gmail.test"></label>
<button name="decision" value="allow">Allow</button> <button name="decision" value="deny">Cancel</button></form>""")

    def _decide(self, query: dict) -> None:
        back = {"state": query.get("state", "")}
        if query.get("decision") != "allow":
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            with self.google.lock:
                self.google.codes[code] = {"redirect_uri": query["redirect_uri"], "account": query["account"],
                                           "challenge": query["code_challenge"], "offline": query.get("access_type") == "offline"}
            back.update(code=code, scope=self.google.granted_scopes)
        self._answer(302, "", {"Location": query["redirect_uri"] + "?" + urlencode(back)})

    def _client_ok(self, body: dict) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            client_id, secret = body.get("client_id"), body.get("client_secret")
        return unquote(client_id or "") == CLIENT_ID and unquote(secret or "") == CLIENT_SECRET

    def _issue_access(self, refresh: str) -> str:
        access = secrets.token_urlsafe(16)
        self.google.access[access] = {"refresh": refresh, "expires": time.time() + self.google.access_token_seconds}
        return access

    def _token(self, body: dict) -> None:
        google = self.google
        if not self._client_ok(body):
            return self._answer(401, {"error": "invalid_client"})
        with google.lock:
            if body.get("grant_type") == "authorization_code":
                code = google.codes.pop(body.get("code", ""), None)
                verifier = body.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if code is None or code["redirect_uri"] != body.get("redirect_uri") or code["challenge"] != challenge:
                    return self._answer(400, {"error": "invalid_grant", "error_description": "Bad code or verifier."})
                google.account_calendars(code["account"])
                refresh = secrets.token_urlsafe(24)
                google.grants[refresh] = {"account": code["account"], "revoked": False}
                answer = {"access_token": self._issue_access(refresh), "expires_in": google.access_token_seconds,
                          "scope": google.granted_scopes, "token_type": "Bearer"}
                if code["offline"]:
                    answer["refresh_token"] = refresh
                return self._answer(200, answer)
            if body.get("grant_type") == "refresh_token":
                grant = google.grants.get(body.get("refresh_token", ""))
                if grant is None or grant["revoked"]:
                    return self._answer(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
                return self._answer(200, {"access_token": self._issue_access(body["refresh_token"]),
                                          "expires_in": google.access_token_seconds, "scope": google.granted_scopes,
                                          "token_type": "Bearer"})
        self._answer(400, {"error": "unsupported_grant_type"})

    def _revoke(self, params: dict) -> None:
        google = self.google
        token = params.get("token", "")
        with google.lock:
            refresh = token if token in google.grants else google.access.get(token, {}).get("refresh")
            if refresh is None or google.grants[refresh]["revoked"]:
                return self._answer(400, {"error": "invalid_token"})
            google.grants[refresh]["revoked"] = True
        self._answer(200, {})

    # --- Calendar API ---
    def _account(self) -> str | None:
        google = self.google
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        with google.lock:
            access = google.access.get(token)
            if access is None or access["expires"] < time.time() or google.grants[access["refresh"]]["revoked"]:
                return None
            return google.grants[access["refresh"]]["account"]

    def _api(self, method: str, path: str, query: dict, body: dict) -> None:
        google = self.google
        account = self._account()
        if account is None:
            return self._error(401, "Request had invalid authentication credentials.")
        with google.lock:
            if google.failures:
                status = google.failures.pop(0)
                return self._error(status, "Rate Limit Exceeded" if status == 429 else "Backend Error")
        own = {c["id"] for c in google.account_calendars(account)}
        if path == "/users/me/calendarList" and method == "GET":
            return self._answer(200, {"kind": "calendar#calendarList", "items": google.account_calendars(account)})
        if path == "/freeBusy" and method == "POST":
            start, end = _parse(body["timeMin"]), _parse(body["timeMax"])
            return self._answer(200, {"kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"],
                                      "calendars": {item["id"]: ({"busy": google._busy(item["id"], start, end)}
                                                                 if item["id"] in own else
                                                                 {"busy": [], "errors": [{"domain": "global", "reason": "notFound"}]})
                                                    for item in body.get("items", [])}})
        if path == "/channels/stop" and method == "POST":
            with google.lock:
                found = google.channels.pop(body.get("id", ""), None)
            return self._answer(204) if found else self._error(404, "Channel not found")
        pieces = [unquote(p) for p in path.split("/")]  # "", "calendars", id, "events", [event id | "watch"]
        if len(pieces) < 4 or pieces[1] != "calendars" or pieces[3] != "events":
            return self._error(404, "Not Found")
        calendar_id = pieces[2]
        if calendar_id not in own:
            return self._error(404, "Not Found")
        if len(pieces) == 4:
            if method == "POST":
                return self._answer(200, google._insert(calendar_id, body))
            if method == "GET":
                wanted = query.get("privateExtendedProperty", "")
                key, _, value = wanted.partition("=")
                items = [e for e in google.events_in(calendar_id)
                         if not wanted or e.get("extendedProperties", {}).get("private", {}).get(key) == value]
                return self._answer(200, {"kind": "calendar#events", "items": items})
        if len(pieces) == 5 and pieces[4] == "watch" and method == "POST":
            with google.lock:
                channel = {"calendar_id": calendar_id, "address": body["address"], "token": body.get("token", ""),
                           "resourceId": f"res-{calendar_id}", "expiration": str(body.get("expiration")), "number": 0}
                google.channels[body["id"]] = channel
                google._queue(body["id"], channel, "sync")
            return self._answer(200, {"kind": "api#channel", "id": body["id"], "resourceId": channel["resourceId"],
                                      "resourceUri": f"{google.url}/calendar/v3{path}", "expiration": channel["expiration"]})
        if len(pieces) == 5:
            with google.lock:
                event = google.events.get(calendar_id, {}).get(pieces[4])
                if event is None:
                    return self._error(404, "Not Found")
                if event["status"] == "cancelled":
                    return self._error(410, "Resource has been deleted")
                if method == "PATCH":
                    event.update(body)
                elif method == "DELETE":
                    event["status"] = "cancelled"
                elif method != "GET":
                    return self._error(405, "Method not allowed")
            if method != "GET":
                google._changed(calendar_id)
            return self._answer(204) if method == "DELETE" else self._answer(200, event)
        self._error(404, "Not Found")
