"""The dashboard in real headless Chromium against a real server: sign in, switch mode, kill switch, history."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from server.live_server import LiveServer

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Where screenshots go when set; read at import because the suite's autouse fixture
#: clears every POLICYSTORE_* variable before each test runs.
OUTPUT_ENV = "POLICYSTORE_TEST_OUTPUT"
OUTPUT_DIR = os.environ.get(OUTPUT_ENV)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        # A missing browser must not turn the dashboard's tests into a silent pass.
        pytest.fail(
            "Chromium is not installed (neither 'chromium' nor 'chromium-browser' is on PATH); "
            "scripts/install-system-deps.sh installs it."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    """Where this test writes screenshots: $POLICYSTORE_TEST_OUTPUT, else its own tmp_path."""
    chosen = Path(OUTPUT_DIR) if OUTPUT_DIR else tmp_path / "screenshots"
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db").start()
    yield server
    server.stop()


@pytest.fixture
def fast_live(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with a 0.2 s heartbeat, so stream-side checks happen within the test's patience."""
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db", heartbeat=0.2).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    blocked: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            blocked.append(message.text)

    opened.on("console", on_console)
    yield opened
    context.close()
    # The page must work under its own CSP: anything the policy blocked is a failure.
    assert [] == blocked


def _sign_in(page: Page, live: LiveServer, role: str) -> None:
    page.goto(live.base + "/")
    page.fill("#token", live.tokens[role])
    page.click("#login-form button[type=submit]")
    expect(page.locator("#live-text")).to_have_text("live")


def _confirm(page: Page, reason: str) -> None:
    expect(page.locator("#confirm")).to_be_visible()
    page.fill("#confirm-reason", reason)
    page.click("#confirm-ok")


class TestDashboard:
    def test_admin_switches_mode_and_kill_switch_and_sees_history(self, live, page, output_dir):
        """Sign in, switch to DEFENSIVE, turn the kill switch on with confirmation, see both in history."""
        _sign_in(page, live, "admin")
        expect(page.locator("#active-mode")).to_have_text("NORMAL")
        expect(page.locator('#limits td.active[data-field="max_leverage"]')).to_have_text("5.0\u00d7")
        expect(page.locator('#limits td[data-mode="NORMAL"][data-field="max_risk_pct_per_trade"]')).to_have_text(
            "1.5 %"
        )

        page.click('#mode-buttons button[data-mode="DEFENSIVE"]')
        _confirm(page, "volatility spike")
        expect(page.locator("#active-mode")).to_have_text("DEFENSIVE")
        expect(page.locator('#limits td.active[data-field="max_leverage"]')).to_have_text("3.0\u00d7")

        page.click("#kill-toggle")
        _confirm(page, "exchange outage")
        expect(page.locator("#kill-badge")).to_have_text("ACTIVE")
        expect(page.locator(".banner.kill")).to_contain_text("exchange outage")
        expect(page.locator("#history tbody tr").first).to_contain_text("exchange outage")
        expect(page.locator("#history tbody tr").first).to_contain_text("ada-admin")
        expect(page.locator("#history tbody")).to_contain_text("volatility spike")

        screenshot = output_dir / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"dashboard screenshot: {screenshot}")  # noqa: T201 - tells the reader where to look

    def test_change_made_elsewhere_appears_live(self, live, page):
        """A write made through the API shows on an open page without reloading."""
        import httpx

        _sign_in(page, live, "viewer")
        httpx.patch(
            f"{live.base}/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverage": 4.0}, "reason": "cut"},
            headers=live.headers("operator"),
            timeout=10,
        )

        expect(page.locator('#limits td.active[data-field="max_leverage"]')).to_have_text("4.0\u00d7")
        expect(page.locator("#version")).to_have_text("2")

    def test_viewer_sees_write_controls_disabled(self, live, page):
        """A viewer's page offers no writes: kill switch and mode buttons are disabled."""
        _sign_in(page, live, "viewer")

        expect(page.locator("#kill-toggle")).to_be_disabled()
        expect(page.locator('#mode-buttons button[data-mode="DEFENSIVE"]')).to_be_disabled()

    def test_wrong_token_shows_error_and_stays_signed_out(self, live, page):
        """A wrong token is refused with the server's sentence; the app stays hidden."""
        page.goto(live.base + "/")
        page.fill("#token", "ps_wrong")
        page.click("#login-form button[type=submit]")

        expect(page.locator("#login-error")).to_contain_text("unknown or revoked")
        expect(page.locator("#app")).to_be_hidden()

    def test_page_is_served_with_csp_and_stream_still_connects(self, live, page):
        """The dashboard is delivered under its CSP, and the same-origin WebSocket it allows goes live."""
        response = page.goto(live.base + "/")

        assert response is not None
        assert "connect-src 'self'" in response.headers["content-security-policy"]
        page.fill("#token", live.tokens["viewer"])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#live-text")).to_have_text("live")
        expect(page.locator("#who")).to_contain_text("vera-viewer")

    def test_revoked_token_signs_the_open_page_out(self, fast_live, page):
        """Revoking the token of an open page closes its stream and returns it to sign-in."""
        live = fast_live
        _sign_in(page, live, "viewer")

        live.call(lambda _store: live.token_store.revoke("vera-viewer"))

        expect(page.locator("#login-error")).to_contain_text("revoked", timeout=15_000)
        expect(page.locator("#app")).to_be_hidden()
