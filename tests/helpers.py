"""Helpers shared by the tests."""
import html
import re
from pathlib import Path

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')
ROOT = Path(__file__).resolve().parent.parent  # the repository
HTMX = {"HX-Request": "true", "HX-Request-Type": "partial"}


def text_of(response) -> str:
    """The response body with HTML entities decoded, for asserting on messages."""
    return html.unescape(response.get_data(as_text=True))


def csrf_token_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1) or match.group(2)


class Browser:
    """The Flask test client used the way a browser without JS uses the site: it reads the
    CSRF token from the page it is on before posting."""

    def __init__(self, client):
        self.client = client

    def get(self, url, **kwargs):
        return self.client.get(url, **kwargs)

    def post_form(self, page_url: str, data: dict, post_url: str | None = None, **kwargs):
        page = self.client.get(page_url)
        token = csrf_token_from(page.get_data(as_text=True))
        return self.client.post(post_url or page_url, data={"csrf_token": token, **data}, **kwargs)

    def login(self, email: str, password: str = "fittribe-demo"):
        response = self.post_form("/login", {"email": email, "password": password})
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        return response

    def logout(self):
        return self.post_form("/", {}, post_url="/logout")


class SSEClient:
    """Reads a text/event-stream over real HTTP in a background thread."""

    def __init__(self, session, url: str, headers: dict | None = None):
        import queue
        import threading

        self.response = session.get(url, stream=True, timeout=(5, 60),
                                    headers={"Accept": "text/event-stream", **(headers or {})})
        self.items = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict = {}
        try:
            for line in self.response.iter_lines(chunk_size=None, decode_unicode=True):
                if line == "":
                    if fields == {"event": "beat"}:  # the heartbeat: a named event the page watches
                        self.items.put({"comment": "heartbeat"})
                        fields = {}
                    elif fields:
                        fields["data"] = "\n".join(fields.get("data", []))
                        self.items.put(fields)
                        fields = {}
                elif line.startswith(":"):
                    self.items.put({"comment": line[1:].strip()})
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        fields.setdefault("data", []).append(value)
                    else:
                        fields[name] = value
        except Exception:  # the connection was closed under us
            pass
        finally:
            self.items.put(None)

    def next(self, timeout: float = 5.0, comments: bool = False) -> dict | None:
        """The next event (or comment); None when the stream ended. Fails on timeout."""
        import queue
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no SSE event within {timeout} s") from None
            if item is None or comments or "comment" not in item:
                return item

    def events_until(self, predicate, timeout: float = 5.0) -> list[dict]:
        seen = []
        while True:
            item = self.next(timeout)
            assert item is not None, f"stream ended before the expected event; saw {seen}"
            seen.append(item)
            if predicate(item):
                return seen

    def close(self) -> None:
        self.response.close()


def live_login(session, base_url: str, email: str, password: str = "fittribe-demo") -> None:
    page = session.get(base_url + "/login").text
    token = csrf_token_from(page)
    response = session.post(base_url + "/login", data={"csrf_token": token, "email": email, "password": password},
                            allow_redirects=False)
    assert response.status_code == 303, response.text[:300]


def demo_hold(app, days_ahead: float = 0, slug: str = "maya-chen", email: str = "member@fittribe.example") -> int:
    """A demo member holds the trainer's first free hour at least `days_ahead` days away, the
    normal way (services/booking.hold); returns the booking id."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from fittribe.extensions import db
    from fittribe.models import TrainerProfile, User
    from fittribe.services import booking as booking_service

    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == slug))
        member = db.session.scalar(select(User).where(User.email == email))
        after = datetime.now(timezone.utc) + timedelta(days=days_ahead)
        slot = next(s for s in booking_service.slots_for(trainer, 60) if s.starts_at >= after)
        return booking_service.hold(member, trainer, slot.starts_at, 60).id


def demo_paid_session(app, days_ahead: float = 0, **who) -> int:
    """`demo_hold`, then paid with the simulated provider's test card: a confirmed session."""
    from fittribe.extensions import db
    from fittribe.models import Booking
    from fittribe.services import payments

    booking_id = demo_hold(app, days_ahead, **who)
    with app.app_context():
        outcome = payments.simulated_charge(db.session.get(Booking, booking_id), "4242424242424242")["outcome"]
        assert outcome == "confirmed", outcome
    return booking_id


class FreezableProxy:
    """A loopback TCP proxy in front of a server that can go silent without closing anything:
    while frozen it accepts and holds connections but moves no bytes either way, as a network
    path does that died without a reset (Wi-Fi to mobile data, a stalled middlebox)."""

    def __init__(self, target_port: int):
        import socket
        import threading

        self.target_port = target_port
        self.frozen = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink) -> None:
        import select
        import time

        try:
            while not self._stopped:
                if self.frozen.is_set():
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select([source], [], [], 0.05)
                if not readable:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except (OSError, ValueError):  # closed under us (ValueError: select() on a closed socket)
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass


def presence_announcements(app, trainer: int) -> list[bool]:
    """The online/offline changes announced to members for `trainer` so far, oldest first."""
    from sqlalchemy import select

    from fittribe.extensions import db
    from fittribe.models import Event
    from fittribe.realtime.channels import PUBLIC

    with app.app_context():
        try:
            events = db.session.scalars(select(Event).where(Event.channel == PUBLIC).order_by(Event.id)).all()
            return [e.payload["context"]["online"] for e in events
                    if e.payload.get("partial") == "partials/presence_push.html"
                    and e.payload["context"]["trainer_id"] == trainer]
        finally:
            db.session.remove()
