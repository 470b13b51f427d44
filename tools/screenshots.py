"""Screenshots of every page, as each role sees it, at a phone's and a laptop's width, for review.

    .venv/bin/python tools/screenshots.py [--out bench-results/screenshots] [--only profile,hold]

Same throwaway setup as bench/lighthouse.py (a fresh PostgreSQL database and Redis db number, the
demo seed, one gunicorn worker); Debian's Chromium through Playwright, full-page PNGs named
`<page>-<width>.png`. JavaScript is on, except for the pages listed with `nojs` (the no-JS view of
the same page). It also reports any page that scrolls sideways at 390 px."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from lighthouse import cookie_header, hold_a_time, logged_in  # noqa: E402
from search import (BenchError, cleanup_on_sigterm, empty_redis_db, gunicorn_server, log,  # noqa: E402
                    run_as_script, run_flask, site_env, throwaway_database)

WIDTHS = {390: 844, 1280: 800}


def pages(base_url: str, sessions: dict) -> list[tuple[str, str, str | None, bool]]:
    """(name, path, role, javascript) of every page worth a look."""
    member = sessions["member"]
    held = hold_a_time(base_url, member)
    dashboard = member.get(base_url + "/dashboard/", timeout=10).text
    booked = sorted(set(re.findall(r'href="/bookings/(\d+)"', dashboard)) - {str(held)})
    listing = [
        ("home", "/", None, True), ("search", "/trainers", None, True), ("search-nojs", "/trainers", None, False),
        ("profile", "/trainers/maya-chen", None, True), ("profile-nojs", "/trainers/maya-chen", None, False),
        ("profile-member", "/trainers/maya-chen", "member", True),
        ("log-in", "/login", None, True), ("sign-up", "/signup", None, True),
        ("time-zone", "/time-zone", None, False),
        ("member-dashboard", "/dashboard/", "member", True), ("payments", "/dashboard/payments", "member", True),
        ("notifications", "/notifications", "member", True),
        ("hold", f"/bookings/{held}", "member", True), ("hold-nojs", f"/bookings/{held}", "member", False),
        ("checkout", f"/bookings/{held}/pay", "member", True),
        ("trainer-dashboard", "/dashboard/", "trainer", True), ("profile-edit", "/dashboard/profile", "trainer", True),
        ("availability-editor", "/dashboard/availability", "trainer", True),
        ("earnings", "/dashboard/earnings", "trainer", True),
        ("admin", "/admin/", "admin", True), ("admin-trainers", "/admin/trainers", "admin", True),
        ("admin-users", "/admin/users", "admin", True), ("admin-reviews", "/admin/reviews", "admin", True),
        ("admin-analytics", "/admin/analytics", "admin", True),
    ]
    if booked:
        listing.append(("booked", f"/bookings/{booked[0]}", "member", True))
    return listing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "screenshots")
    parser.add_argument("--only", default="", help="comma-separated page names")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--chrome", default=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    cleanup_on_sigterm()
    only = {name for name in args.only.split(",") if name}
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="fittribe-screenshots-"))
    sideways: list[str] = []
    try:
        with throwaway_database(args.database_url) as (_name, db_url), empty_redis_db(args.redis_url) as redis_url:
            env = site_env(db_url, redis_url, workdir, "screenshots")
            run_flask(["db", "upgrade"], env, 300)
            run_flask(["seed"], env, 300)
            with gunicorn_server(env, workdir / "gunicorn.log", start_timeout=30) as base_url, sync_playwright() as pw:
                sessions = {role: logged_in(base_url, f"{role}@fittribe.example")
                            for role in ("member", "trainer", "admin")}
                browser = pw.chromium.launch(executable_path=args.chrome)
                for name, path, role, javascript in pages(base_url, sessions):
                    if only and name not in only:
                        continue
                    for width, height in WIDTHS.items():
                        context = browser.new_context(viewport={"width": width, "height": height},
                                                      java_script_enabled=javascript, timezone_id="Europe/Berlin")
                        if role:
                            context.set_extra_http_headers({"Cookie": cookie_header(sessions[role])})
                        page = context.new_page()
                        response = page.goto(base_url + path, wait_until="load")
                        page.wait_for_timeout(600 if javascript else 0)
                        status = response.status if response else "?"
                        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                        if width == 390 and overflow > 0:
                            sideways.append(f"{name} ({overflow}px)")
                        page.screenshot(path=str(args.out / f"{name}-{width}.png"), full_page=True)
                        log(f"{name} {width}px: HTTP {status}")
                        context.close()
                browser.close()
    except BenchError as error:
        log(f"error: {error}")
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"screenshots in {args.out}")
    print("sideways scroll at 390 px: " + (", ".join(sideways) or "none"))
    return 1 if sideways else 0


if __name__ == "__main__":
    run_as_script(main)
