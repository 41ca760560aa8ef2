"""The dashboard in real headless Chromium against a real server.

Sign in, previews of every write, modes ordered by risk, strategies, units,
history paging and diffs, an unreachable store, and live changes from the stream.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from policystore.backends.memory import MemoryBackend
from policystore.testing import SwitchableBackend
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
    expect(page.locator("#confirm-ok")).to_be_enabled()  # the preview came back and allows it
    page.fill("#confirm-reason", reason)
    page.click("#confirm-ok")


def _api(live: LiveServer, method: str, path: str, body: dict, role: str = "admin") -> httpx.Response:
    response = httpx.request(method, f"{live.base}{path}", json=body, headers=live.headers(role), timeout=10)
    assert response.is_success, response.text
    return response


def _shot(page: Page, output_dir: Path, name: str) -> None:
    screenshot = output_dir / f"{name}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot: {screenshot}")  # noqa: T201 - tells the reader where to look


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


class TestPreviews:
    def test_operator_mode_dialog_previews_changes_and_refusal_before_the_reason(self, live, page, output_dir):
        """A looser mode says 'admin only'; its dialog lists old -> new limits and the refusal, with no reason typed."""
        _sign_in(page, live, "operator")
        looser = page.locator('#mode-buttons button[data-mode="AGGRESSIVE_SMALL_ACCOUNT"]')
        expect(looser).to_have_attribute("data-allowed", "false")
        expect(looser).to_contain_text("admin only")
        expect(looser).to_have_class(re.compile(r"\blocked\b"))

        looser.click()

        expect(page.locator("#confirm-allowed")).to_contain_text("Needs the admin role: your role (operator) may not")
        row = page.locator('#confirm-changes tr[data-path="risk.max_leverage"]')
        expect(row).to_contain_text("5.0\u00d7")
        expect(row).to_contain_text("7.0\u00d7")
        expect(row).to_contain_text("raises risk")
        expect(page.locator('#confirm-changes tr[data-path="risk.global_min_confidence"]')).to_contain_text("≥ 0.45")
        assert "" == page.input_value("#confirm-reason")
        expect(page.locator("#confirm-ok")).to_be_disabled()
        _shot(page, output_dir, "preview-refused")
        page.click("#confirm-cancel")

        stricter = page.locator('#mode-buttons button[data-mode="DEFENSIVE"]')
        expect(stricter).to_have_attribute("data-allowed", "true")
        stricter.click()
        expect(page.locator("#confirm-allowed")).to_contain_text("Your role (operator) may make this change.")
        expect(page.locator('#confirm-changes tr[data-path="risk.max_leverage"]')).to_contain_text("3.0\u00d7")
        _confirm(page, "cpi print")
        expect(page.locator("#active-mode")).to_have_text("DEFENSIVE")

    def test_rollback_dialog_previews_what_returns(self, live, page, output_dir):
        """An admin's rollback dialog shows the mode and limits that come back before anything is written."""
        _api(live, "POST", "/v1/mode", {"mode": "DEFENSIVE", "reason": "cpi"})
        _sign_in(page, live, "admin")

        page.click('#history button.rollback[data-version="1"]')

        expect(page.locator('#confirm-changes tr[data-path="active_mode"]')).to_contain_text("DEFENSIVE")
        expect(page.locator('#confirm-changes tr[data-path="active_mode"]')).to_contain_text("NORMAL")
        expect(page.locator('#confirm-changes tr[data-path="risk.max_leverage"]')).to_contain_text("3.0\u00d7")
        expect(page.locator("#confirm-allowed")).to_contain_text("may make this change")
        _shot(page, output_dir, "preview-rollback")
        _confirm(page, "back to the start")
        expect(page.locator("#active-mode")).to_have_text("NORMAL")
        expect(page.locator("#version")).to_have_text("3")


class TestLayout:
    def test_modes_ordered_by_risk_with_the_rule_in_a_tooltip(self, live, page):
        """Buttons and columns run from least to most risk (leverage, then risk per trade); a tooltip says so."""
        _sign_in(page, live, "viewer")
        order = ["DEFENSIVE", "NORMAL", "AGGRESSIVE_SMALL_ACCOUNT"]

        expect(page.locator("#mode-buttons button")).to_have_count(3)
        assert order == page.locator("#mode-buttons button").evaluate_all("bs => bs.map(b => b.dataset.mode)")
        assert order == page.locator("#limits thead th").all_inner_texts()[1:4]
        assert "max_leverage" in (page.get_attribute("#modes-order", "title") or "")

    def test_confidence_is_a_floor_and_the_size_cap_is_money(self, live, page):
        """global_min_confidence reads '≥ 0.50'; position_size_cap carries account-currency units."""
        _sign_in(page, live, "viewer")

        expect(page.locator('#limits td[data-mode="NORMAL"][data-field="global_min_confidence"]')).to_have_text(
            "≥ 0.50"
        )
        expect(page.locator('#limits td.cap[data-field="global_min_confidence"]')).to_have_text("≥ 0.30")
        expect(page.locator('#limits td[data-mode="NORMAL"][data-field="position_size_cap"]')).to_have_text(
            "1,000 acct ccy"
        )
        expect(page.locator("#limits tbody tr", has_text="position_size_cap")).to_contain_text("account currency")

    def test_strategies_show_cooldowns_overrides_and_effective_values(self, live, page, output_dir):
        """Each strategy's cooldown, its overrides, values from the mode, and an override the mode clamps."""
        _api(live, "PATCH", "/v1/policy", {"changes": {"modes.NORMAL.max_leverage": 2.5}, "reason": "cut"})
        _sign_in(page, live, "viewer")

        def cell(strategy: str, field: str):
            return page.locator(f'#strategies td[data-strategy="{strategy}"][data-field="{field}"]')

        expect(cell("conservative", "cooldown_seconds")).to_contain_text("300 s")
        expect(cell("conservative", "max_leverage")).to_contain_text("2.0\u00d7")
        expect(cell("conservative", "max_leverage")).to_contain_text("override")
        expect(cell("aggressive", "max_leverage")).to_contain_text("2.5\u00d7")
        expect(cell("aggressive", "max_leverage")).to_contain_text("from mode")
        expect(cell("moderate", "max_leverage")).to_contain_text("2.5\u00d7")
        expect(cell("moderate", "max_leverage")).to_contain_text("override 3.0\u00d7 is looser; the mode's applies")
        expect(cell("moderate", "min_confidence")).to_contain_text("≥ 0.55")
        _shot(page, output_dir, "strategies")


class TestHistory:
    def test_kill_switch_rows_read_as_one_line(self, live, page):
        """A kill-switch write is one line, 'kill switch ON by NAME: reason', without its stamp fields."""
        _api(live, "POST", "/v1/emergency", {"active": True, "reason": "exchange outage"}, role="operator")
        _api(live, "POST", "/v1/emergency", {"active": False, "reason": "exchange back"})
        _sign_in(page, live, "viewer")

        rows = page.locator("#history tbody tr")
        expect(rows.nth(0)).to_contain_text("kill switch OFF by ada-admin: exchange back")
        expect(rows.nth(1)).to_contain_text("kill switch ON by otto-operator: exchange outage")
        expect(rows.nth(1)).not_to_contain_text("emergency.activated_at")

    def test_history_pages_beyond_25_rows_and_diffs_two_picked_versions(self, live, page, output_dir):
        """30 versions: 25 rows, then the older 5; picking two rows shows what changed between them."""
        for step in range(29):
            leverage = 4.9 - step * 0.1
            _api(
                live, "PATCH", "/v1/policy", {"changes": {"modes.NORMAL.max_leverage": leverage}, "reason": f"s{step}"}
            )
        _sign_in(page, live, "viewer")
        rows = page.locator("#history tbody tr")
        expect(rows).to_have_count(25)
        expect(page.locator("#history-range")).to_have_text("versions 30\u20136")

        page.click("#history-older")
        expect(page.locator("#history-range")).to_have_text("versions 5\u20131")
        expect(rows).to_have_count(5)
        expect(page.locator("#history-older")).to_be_disabled()
        page.check('#history input.pick[data-version="1"]')
        page.check('#history input.pick[data-version="4"]')
        diff = page.locator('#diff-result tr[data-path="modes.NORMAL.max_leverage"]')
        expect(diff).to_contain_text("5.0\u00d7")
        expect(diff).to_contain_text("4.7\u00d7")
        _shot(page, output_dir, "history-older-and-diff")

        page.click("#history-newer")
        expect(page.locator("#history-range")).to_have_text("versions 30\u20136")
        page.fill("#diff-v1", "2")
        page.fill("#diff-v2", "30")
        page.click("#diff-go")
        expect(page.locator("#diff-result")).to_contain_text("From version 2 to version 30")
        expect(page.locator('#diff-result tr[data-path="modes.NORMAL.max_leverage"]')).to_contain_text("2.1\u00d7")


class TestUnreachableStore:
    def test_kill_switch_refused_while_store_down_says_so_and_what_still_protects(self, request, page, output_dir):
        """One sentence that nothing was written, one on what still holds; no raw back-end error in the toast."""
        backend = SwitchableBackend(MemoryBackend(f"dash-{request.node.name}-{id(request)}"))
        live = LiveServer(backend).start()
        try:
            _sign_in(page, live, "operator")
            live.call(lambda _store: _switch_off(backend))

            page.click("#kill-toggle")
            _confirm(page, "exchange outage")  # the preview is made on the server's copy, which it still holds

            toast = page.locator("#toast")
            expect(toast).to_contain_text("Kill switch NOT turned on: the policy store cannot be reached")
            expect(toast).to_contain_text("each trading process keeps to the last policy it holds (here version 1")
            expect(toast).to_contain_text("one that holds none opens no new trade")
            expect(toast).not_to_contain_text("switched off")  # the back end's own words stay in the tooltip
            # The header says what /healthz and /v1/values say: stale answers from the copy, not "store · live".
            expect(page.locator("#source")).to_have_text("last_known_good (stale)")
            expect(page.locator("#live-text")).to_have_text("stale")
            _shot(page, output_dir, "kill-switch-store-down")
        finally:
            live.stop()


async def _switch_off(backend: SwitchableBackend) -> None:
    backend.set_available(False)


class TestStream:
    def test_mode_switch_and_kill_switch_made_elsewhere_appear_from_policy_updated_alone(self, live, page):
        """The stream sends one policy.updated per change; the page follows mode and kill switch from it."""
        _sign_in(page, live, "viewer")

        _api(live, "POST", "/v1/mode", {"mode": "DEFENSIVE", "reason": "cpi"}, role="operator")
        expect(page.locator("#active-mode")).to_have_text("DEFENSIVE")
        _api(live, "POST", "/v1/emergency", {"active": True, "reason": "halt"}, role="operator")
        expect(page.locator("#kill-badge")).to_have_text("ACTIVE")
        expect(page.locator("#version")).to_have_text("3")
        expect(page.locator("#history tbody tr").first).to_contain_text("kill switch ON by otto-operator: halt")
