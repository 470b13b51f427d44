"""Admin analytics: GET /admin/analytics (the page), its two live fragments and CSV exports.

The page is plain HTML (a GET form picks the period). With JS, the figures and the charts
re-fetch themselves when a "metrics-changed" event arrives on the page's stream."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

from flask import Blueprint, Response, abort, make_response, render_template, request
from flask_login import current_user

from ..models import Role
from ..services import analytics
from ..services.analytics import Day, Period, PeriodError
from .access import role_required
from .charts import bar_chart, compact
from .htmx import is_partial_request

bp = Blueprint("analytics", __name__, url_prefix="/admin")


def _period() -> Period:
    return analytics.parse_period(request.args.get("from"), request.args.get("to"), current_user.time_zone)


@bp.app_template_filter("cents")
def _money(cents: int, currency: str) -> str:
    """1234550, "USD" -> "12,345.50 USD": amounts always name their currency."""
    return f"{cents / 100:,.2f} {currency}"


def _figures(figures: analytics.Figures) -> dict:
    return {"figures": figures, "windows": analytics.WINDOWS, "top_limit": analytics.TOP_TRAINERS}


def _charts(days: list[Day]) -> dict:
    """Daily revenue (the busiest currency; others are in the table) and daily bookings."""
    money = analytics.currencies(days)
    currency = money[0] if money else "USD"
    labels = [f"{d.day.day} {d.day:%b}" for d in days]  # the chart's description has the year
    revenue = bar_chart([d.net_cents.get(currency, 0) for d in days], labels, lambda c: _money(c, currency),
                        axis=lambda c: compact(c / 100))
    bookings = bar_chart([d.bookings for d in days], labels, lambda n: f"{n:,}")
    return {"days": days, "currencies": money, "chart_currency": currency, "revenue_chart": revenue,
            "bookings_chart": bookings}


def _page(period: Period | None, error: str | None = None, status: int = 200) -> Response:
    today = analytics.today_in(analytics.zone_of(current_user.time_zone))
    presets = {days: {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
               for days in (7, 30, 90)}
    context: dict = {"period": period, "error": error, "presets": presets, "default_days": analytics.DEFAULT_DAYS,
                     "form": {"from": request.args.get("from", ""), "to": request.args.get("to", "")}}
    if period is not None:
        figures, days = analytics.overview(period)
        context.update(**_figures(figures), **_charts(days), form=period.query)
    return make_response(render_template("pages/admin_analytics.html", **context), status)


@bp.get("/analytics")
@role_required(Role.ADMIN)
def page():
    try:
        period = _period()
    except PeriodError as error:
        # The form comes back with the message, so the admin can fix the dates right there.
        return _page(None, str(error), 400)
    return _page(period)


def _fragment(partial: str, context) -> Response:
    """A live fragment for htmx; a normal request (e.g. the link opened in a tab) gets the page."""
    try:
        period = _period()
    except PeriodError as error:
        if not is_partial_request():
            return _page(None, str(error), 400)
        abort(400, str(error))
    if not is_partial_request():
        return _page(period)
    return make_response(render_template(partial, period=period, **context(period)))


@bp.get("/analytics/figures")
@role_required(Role.ADMIN)
def figures():
    return _fragment("partials/analytics_figures.html", lambda p: _figures(analytics.figures(p)))


@bp.get("/analytics/charts")
@role_required(Role.ADMIN)
def charts():
    return _fragment("partials/analytics_charts.html", lambda p: _charts(analytics.daily(p)))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """Text a spreadsheet would run as a formula (a trainer named "=HYPERLINK(…)") is quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        try:
            float(value)  # a negative amount stays a number
        except ValueError:
            return "'" + value
    return value


@bp.get("/analytics.csv")
@role_required(Role.ADMIN)
def export():
    table = request.args.get("table", "")
    if table not in analytics.EXPORTS:
        abort(400, f"Choose a table to export: {', '.join(analytics.EXPORTS)}.")
    try:
        period = _period()
    except PeriodError as error:
        abort(400, str(error))
    header, rows = analytics.export_rows(table, period)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    response = make_response(buffer.getvalue())
    response.content_type = "text/csv; charset=utf-8"
    filename = f"fittribe-{table.replace('_', '-')}-{period.first}-to-{period.last}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"  # business figures: not for shared caches
    return response

