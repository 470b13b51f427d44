"""Playwright set-up for the browser tests: Debian's Chromium, never a downloaded browser.

CI installs /usr/bin/chromium; without it these tests fail (they do not skip), so a
missing browser can never turn the browser suite silently green."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Auto-waiting limit for each locator action/assertion: generous for a slow CI box,
# still far below pytest's patience, so a broken page fails fast enough.
DEFAULT_TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium is required for the browser tests and was not found at {CHROMIUM}. "
                    "Install Debian's package (apt-get install chromium) or set CHROMIUM_PATH; "
                    "`playwright install` is not used here.", pytrace=False)
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "headless": True,
            "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS]}


@pytest.fixture
def new_context(new_context):
    """Every context, including ones a test opens itself, gets the same default timeout."""
    def make(**kwargs):
        context = new_context(**kwargs)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        return context

    return make


@pytest.fixture
def member_context(new_context) -> BrowserContext:
    return new_context()


@pytest.fixture
def trainer_context(new_context) -> BrowserContext:
    return new_context()
