"""Lighthouse scores of the main pages, as a phone sees them (Lighthouse's default mobile profile:
Moto G-class screen, simulated slow 4G and 4x CPU slowdown).

Run from the project root after `make install-dev assets` (npm installs Lighthouse, pinned in
package.json devDependencies):

    .venv/bin/python bench/lighthouse.py            # CHROME_PATH defaults to /usr/bin/chromium

What it does, cleaned up afterwards (also on error, Ctrl-C and SIGTERM), with the helpers of
bench/search.py: a throwaway PostgreSQL database and Redis db number, `flask db upgrade` and
`flask seed` (the demo data), one gunicorn gevent worker; it logs in the demo member and trainer
through the real login form, holds a time for the member (so there is a hold and a checkout page),
then runs `lighthouse` once per page, logged-in pages with the account's session cookie as an extra
header. It prints a table (performance, accessibility, LCP, CLS, TBT, bytes) and one JSON line.
Targets: accessibility 100 and performance >= 95 on every page; exit code 1 when one is missed,
2 when the benchmark itself could not run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import (BenchError, cleanup_on_sigterm, empty_redis_db, gunicorn_server, log, print_table,  # noqa: E402
                    run_as_script, run_flask, site_env, throwaway_database)

LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
TARGET_PERFORMANCE = 95
TARGET_ACCESSIBILITY = 100
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')


def csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    if not match:
        raise BenchError("no CSRF token on the page")
    return match.group(1) or match.group(2)


def logged_in(base_url: str, email: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    token = csrf(session.get(base_url + "/login", timeout=10).text)
    response = session.post(base_url + "/login", data={"csrf_token": token, "email": email,
                                                       "password": "fittribe-demo"}, allow_redirects=False, timeout=10)
    if response.status_code != 303:
        raise BenchError(f"log in as {email} failed: HTTP {response.status_code}")
    return session


def hold_a_time(base_url: str, member: requests.Session) -> int:
    """The member holds the first free time on Maya's profile, through the profile's own form."""
    page = member.get(base_url + "/trainers/maya-chen", timeout=10).text
    form = page.split('action="/trainers/maya-chen/hold"', 1)[1]
    fields = {name: re.search(rf'name="{name}" value="([^"]+)"', form).group(1) for name in ("starts_at", "length")}
    response = member.post(base_url + "/trainers/maya-chen/hold", data={"csrf_token": csrf(page), **fields},
                           allow_redirects=False, timeout=10)
    location = response.headers.get("Location", "")
    if response.status_code != 303 or not location.startswith("/bookings/"):
        raise BenchError(f"holding a time failed: HTTP {response.status_code} {location}")
    return int(location.rsplit("/", 1)[1])


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def lighthouse(url: str, cookie: str | None, chrome: str, workdir: Path, timeout: float) -> dict:
    out = workdir / "report.json"
    command = [str(LIGHTHOUSE), url, "--output=json", f"--output-path={out}", "--quiet",
               "--only-categories=performance,accessibility",
               "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"]
    if cookie:
        command.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
    result = subprocess.run(command, env={**os.environ, "CHROME_PATH": chrome}, capture_output=True, text=True,
                            timeout=timeout, start_new_session=True)
    if result.returncode != 0 or not out.exists():
        raise BenchError(f"lighthouse failed on {url}:\n{result.stderr[-3000:]}")
    report = json.loads(out.read_text())
    if report.get("finalDisplayedUrl") != url:  # e.g. sent to the login page: the cookie did not work
        raise BenchError(f"{url} ended at {report.get('finalDisplayedUrl')}")
    audits = report["audits"]
    failing = [audit_id for audit_id, audit in audits.items()
               if audit.get("scoreDisplayMode") == "binary" and audit.get("score") == 0
               and audit_id in {ref["id"] for ref in report["categories"]["accessibility"]["auditRefs"]}]
    return {
        "performance": round(report["categories"]["performance"]["score"] * 100),
        "accessibility": round(report["categories"]["accessibility"]["score"] * 100),
        "lcp_ms": round(audits["largest-contentful-paint"]["numericValue"]),
        "cls": round(audits["cumulative-layout-shift"]["numericValue"], 3),
        "tbt_ms": round(audits["total-blocking-time"]["numericValue"]),
        "bytes": round(audits["total-byte-weight"]["numericValue"]),
        "a11y_failing": failing,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--chrome", default=os.environ.get("CHROME_PATH", "/usr/bin/chromium"))
    parser.add_argument("--timeout", type=float, default=180, help="seconds per Lighthouse run")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cleanup_on_sigterm()
    if not LIGHTHOUSE.exists():
        log("Lighthouse is not installed: run `make install-dev assets` (npm ci) first")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="fittribe-lighthouse-"))
    rows: list[dict] = []
    try:
        with throwaway_database(args.database_url) as (_name, db_url), empty_redis_db(args.redis_url) as redis_url:
            env = {**site_env(db_url, redis_url, workdir, "lighthouse"),
                   "HOLD_MINUTES": "60"}  # the hold must outlive the runs
            run_flask(["db", "upgrade"], env, 300)
            run_flask(["seed"], env, 300)
            with gunicorn_server(env, workdir / "gunicorn.log", start_timeout=30) as base_url:
                member = logged_in(base_url, "member@fittribe.example")
                trainer = logged_in(base_url, "trainer@fittribe.example")
                held = hold_a_time(base_url, member)
                pages = [("home", "/", None), ("search", "/trainers", None), ("profile", "/trainers/maya-chen", None),
                         ("log in", "/login", None), ("sign up", "/signup", None),
                         ("member dashboard", "/dashboard/", member), ("trainer dashboard", "/dashboard/", trainer),
                         ("hold", f"/bookings/{held}", member), ("checkout", f"/bookings/{held}/pay", member)]
                for name, path, session in pages:
                    log(f"lighthouse {name}: {path}")
                    scores = lighthouse(base_url + path, cookie_header(session) if session else None, args.chrome,
                                        workdir, args.timeout)
                    rows.append({"page": name, "path": path, **scores})
    except (BenchError, requests.RequestException, subprocess.TimeoutExpired) as error:
        log(f"error: {error}")
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print("\nLighthouse " + subprocess.run([str(LIGHTHOUSE), "--version"], capture_output=True, text=True).stdout.strip()
          + ", mobile profile, Chromium at " + args.chrome)
    print_table(["page", "perf", "a11y", "LCP ms", "CLS", "TBT ms", "bytes", "a11y failing"],
                [[r["page"], r["performance"], r["accessibility"], r["lcp_ms"], r["cls"], r["tbt_ms"], r["bytes"],
                  ", ".join(r["a11y_failing"]) or "—"] for r in rows], align="lrrrrrrl")
    passed = all(r["performance"] >= TARGET_PERFORMANCE and r["accessibility"] >= TARGET_ACCESSIBILITY for r in rows)
    print(f"targets (performance >= {TARGET_PERFORMANCE}, accessibility = {TARGET_ACCESSIBILITY}): "
          + ("PASS" if passed else "FAIL"))
    result = {"benchmark": "fittribe-lighthouse", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pages": rows,
              "pass": passed}
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0 if passed else 1


if __name__ == "__main__":
    run_as_script(main)
