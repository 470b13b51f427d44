"""The one place that decides between a full page and a fragment (see HTTP conventions)."""
from __future__ import annotations

from flask import Response, make_response, redirect, render_template, request


def is_partial_request() -> bool:
    # htmx 4 sends HX-Request-Type: full for history restores and hx-select; those need the page.
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Request-Type") == "partial"


def render(page: str, partial: str, status: int = 200, **context) -> Response:
    """Render `page` for a normal request, or only `partial` (which the page includes)."""
    template = partial if is_partial_request() else page
    return make_response(render_template(template, **context), status)


def see_other(url: str) -> Response:
    """Post/Redirect/Get. htmx's fetch would follow a 303 and swap the next page into the
    form, so for htmx the browser is told to navigate instead."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, code=303)
