"""Helpers shared by the tests."""
import html
import re

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')
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
