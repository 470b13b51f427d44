"""The page-or-fragment rule (HTMX4.md §6) and Post/Redirect/Get for htmx."""
import pytest
from flask import Flask

from fittribe.web.htmx import is_partial_request, see_other


@pytest.fixture(scope="module")
def bare_app():
    return Flask(__name__)


@pytest.mark.parametrize("headers, partial", [
    ({}, False),
    ({"HX-Request": "true", "HX-Request-Type": "partial"}, True),
    ({"HX-Request": "true", "HX-Request-Type": "full"}, False),  # hx-select / body target
    ({"HX-History-Restore-Request": "true", "HX-Request-Type": "full"}, False),
    ({"HX-Request": "true"}, False),
])
def test_fragment_only_for_partial_htmx_requests(bare_app, headers, partial):
    with bare_app.test_request_context("/", headers=headers):
        assert is_partial_request() is partial


def test_see_other_redirects_browsers_and_tells_htmx_to_navigate(bare_app):
    with bare_app.test_request_context("/", method="POST"):
        response = see_other("/next")
        assert (response.status_code, response.headers["Location"]) == (303, "/next")
    with bare_app.test_request_context("/", method="POST", headers={"HX-Request": "true"}):
        response = see_other("/next")
        assert (response.status_code, response.headers["HX-Redirect"]) == (204, "/next")
